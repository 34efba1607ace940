package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeforge/kubeforge/internal/wait"
)

// DrainOptions are kubectl drain's, the ones kubeforge uses.
type DrainOptions struct {
	// Timeout bounds the whole drain (evictions a PodDisruptionBudget
	// holds back are retried until then).
	Timeout time.Duration
	// Force evicts pods that no controller manages (they are gone for
	// good).
	Force bool
}

// DrainError names the pods a drain could not move.
type DrainError struct {
	Node string
	// Unmanaged pods need Force; Blocked ones were held by a budget or
	// did not go before the timeout, with why.
	Unmanaged []string
	Blocked   map[string]string
}

func (e *DrainError) Error() string {
	var parts []string
	if len(e.Unmanaged) > 0 {
		parts = append(parts, fmt.Sprintf("pods that no controller manages (they would be lost; --force evicts them): %s", strings.Join(e.Unmanaged, ", ")))
	}
	if len(e.Blocked) > 0 {
		names := make([]string, 0, len(e.Blocked))
		for n, why := range e.Blocked {
			names = append(names, n+" ("+why+")")
		}
		sort.Strings(names)
		parts = append(parts, "pods not evicted: "+strings.Join(names, ", "))
	}
	return fmt.Sprintf("drain %s: %s", e.Node, strings.Join(parts, "; "))
}

// Is makes a DrainError an ErrRefused.
func (e *DrainError) Is(target error) bool { return target == ErrRefused }

// Drain cordons the node and evicts its pods through the eviction API, so
// PodDisruptionBudgets are respected (an eviction they refuse is retried
// until the timeout), as `kubectl drain --ignore-daemonsets
// --delete-emptydir-data` does: DaemonSet pods and the node's static
// (mirror) pods stay; pods that no controller manages are refused unless
// Force. It returns once every evicted pod is gone. The node stays
// cordoned, also when the drain fails.
func (c *Client) Drain(ctx context.Context, node string, o DrainOptions) error {
	api, err := c.api(ctx)
	if err != nil {
		return err
	}
	if err := c.Cordon(ctx, node); err != nil {
		return err
	}
	list, err := api.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String()})
	if err != nil {
		return wrap("list the pods on "+node, err)
	}
	var evict []corev1.Pod
	de := &DrainError{Node: node, Blocked: map[string]string{}}
	for _, p := range list.Items {
		switch {
		case p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
			evict = append(evict, p) // done: deleting it loses nothing
		case isMirror(p), ownedBy(p, "DaemonSet"):
		case metav1.GetControllerOf(&p) == nil && !o.Force:
			de.Unmanaged = append(de.Unmanaged, p.Namespace+"/"+p.Name)
		default:
			evict = append(evict, p)
		}
	}
	if len(de.Unmanaged) > 0 {
		return de
	}
	deadline := time.Now().Add(o.Timeout)
	pending := map[types.UID]corev1.Pod{}
	for _, p := range evict {
		pending[p.UID] = p
	}
	// Evict until none is left to evict or the time is up; then wait for
	// the evicted ones to be gone.
	err = wait.For(ctx, time.Until(deadline), func() (bool, error) {
		for uid, p := range pending {
			switch err := evictPod(ctx, api, p); {
			case err == nil, errorIs(err, ErrNotFound):
				delete(pending, uid)
				delete(de.Blocked, p.Namespace+"/"+p.Name)
			case errorIs(err, ErrRefused): // a budget says not now
				de.Blocked[p.Namespace+"/"+p.Name] = "a PodDisruptionBudget does not allow it now"
			default:
				return false, err
			}
		}
		return len(pending) == 0, nil
	})
	if err != nil {
		if len(de.Blocked) == 0 {
			return wrap("drain "+node, err)
		}
		return de
	}
	return c.waitPodsGone(ctx, api, node, evict, time.Until(deadline))
}

func evictPod(ctx context.Context, api kubernetes.Interface, p corev1.Pod) error {
	err := api.CoreV1().Pods(p.Namespace).EvictV1(ctx, &policyv1.Eviction{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace},
	})
	return wrap("evict "+p.Namespace+"/"+p.Name, err)
}

// waitPodsGone waits until none of pods exists any more (by UID: a
// StatefulSet's new pod has the old name).
func (c *Client) waitPodsGone(ctx context.Context, api kubernetes.Interface, node string, pods []corev1.Pod, timeout time.Duration) error {
	left := map[string]string{}
	err := wait.For(ctx, max(timeout, time.Second), func() (bool, error) {
		clear(left)
		for _, p := range pods {
			got, err := api.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
			switch {
			case IsNotFound(wrap("", err)):
			case err != nil:
				return false, wrap("get pod "+p.Namespace+"/"+p.Name, err)
			case got.UID == p.UID:
				left[p.Namespace+"/"+p.Name] = "still terminating"
			}
		}
		return len(left) == 0, nil
	})
	if err != nil {
		if len(left) > 0 {
			return &DrainError{Node: node, Blocked: left}
		}
		return err
	}
	return nil
}

func isMirror(p corev1.Pod) bool {
	_, ok := p.Annotations[corev1.MirrorPodAnnotationKey]
	return ok
}

func ownedBy(p corev1.Pod, kind string) bool {
	ref := metav1.GetControllerOf(&p)
	return ref != nil && ref.Kind == kind
}

func errorIs(err, kind error) bool { return errors.Is(err, kind) }
