package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubeforge/kubeforge/internal/wait"
)

// Node reads a node; a node that does not exist is ErrNotFound.
func (c *Client) Node(ctx context.Context, name string) (*corev1.Node, error) {
	api, err := c.api(ctx)
	if err != nil {
		return nil, err
	}
	n, err := api.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	return n, wrap("get node "+name, err)
}

// Nodes lists the nodes.
func (c *Client) Nodes(ctx context.Context) ([]corev1.Node, error) {
	api, err := c.api(ctx)
	if err != nil {
		return nil, err
	}
	l, err := api.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, wrap("list the nodes", err)
	}
	return l.Items, nil
}

// NodeReady reports whether the node's Ready condition is True.
func NodeReady(node *corev1.Node) bool {
	return NodeCondition(node, corev1.NodeReady) == corev1.ConditionTrue
}

// NodeCondition is the status of one of the node's conditions, Unknown
// when it has none.
func NodeCondition(node *corev1.Node, t corev1.NodeConditionType) corev1.ConditionStatus {
	for _, c := range node.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}

// WaitNodeReady waits until the node exists and is Ready.
func (c *Client) WaitNodeReady(ctx context.Context, name string, timeout time.Duration) error {
	return wait.For(ctx, timeout, func() (bool, error) {
		n, err := c.Node(ctx, name)
		return err == nil && NodeReady(n), err
	})
}

// WaitNodeVersion waits until the node is Ready and its kubelet reports
// version (a restarted kubelet updates its Node's status as it starts).
func (c *Client) WaitNodeVersion(ctx context.Context, name, version string, timeout time.Duration) error {
	var last string
	err := wait.For(ctx, timeout, func() (bool, error) {
		n, err := c.Node(ctx, name)
		if err != nil {
			return false, err
		}
		last = n.Status.NodeInfo.KubeletVersion
		return NodeReady(n) && last == version, nil
	})
	if err != nil && last != version {
		return fmt.Errorf("node %s: its kubelet reports %s, not %s: %w", name, last, version, err)
	}
	return err
}

// LabelNode sets labels on a node: a merge patch of its labels alone,
// sent as data (no key or value is part of any command).
func (c *Client) LabelNode(ctx context.Context, name string, labels map[string]string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
	if err != nil {
		return err
	}
	return c.patchNode(ctx, "label node "+name, name, patch)
}

// Cordon marks the node unschedulable; Uncordon undoes it.
func (c *Client) Cordon(ctx context.Context, name string) error {
	return c.patchNode(ctx, "cordon "+name, name, []byte(`{"spec":{"unschedulable":true}}`))
}

func (c *Client) Uncordon(ctx context.Context, name string) error {
	return c.patchNode(ctx, "uncordon "+name, name, []byte(`{"spec":{"unschedulable":null}}`))
}

func (c *Client) patchNode(ctx context.Context, op, name string, patch []byte) error {
	api, err := c.api(ctx)
	if err != nil {
		return err
	}
	_, err = api.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
	return wrap(op, err)
}

// DeleteNode deletes the Node object; one that is gone already is not an
// error.
func (c *Client) DeleteNode(ctx context.Context, name string) error {
	api, err := c.api(ctx)
	if err != nil {
		return err
	}
	err = api.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
	if err = wrap("delete node "+name, err); IsNotFound(err) {
		return nil
	}
	return err
}

// FieldManager is kubeforge's name in managedFields.
const FieldManager = "kubeforge"

// IsNotFound reports an ErrNotFound.
func IsNotFound(err error) bool { return err != nil && errorIs(err, ErrNotFound) }
