package cluster

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeforge/kubeforge/internal/wait"
)

// Secret reads a Secret; a missing one is ErrNotFound.
func (c *Client) Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	api, err := c.api(ctx)
	if err != nil {
		return nil, err
	}
	s, err := api.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	return s, wrap("get secret "+namespace+"/"+name, err)
}

// Secrets lists a namespace's Secrets of one type ("" for all).
func (c *Client) Secrets(ctx context.Context, namespace string, typ corev1.SecretType) ([]corev1.Secret, error) {
	api, err := c.api(ctx)
	if err != nil {
		return nil, err
	}
	opts := metav1.ListOptions{}
	if typ != "" {
		opts.FieldSelector = "type=" + string(typ)
	}
	l, err := api.CoreV1().Secrets(namespace).List(ctx, opts)
	if err != nil {
		return nil, wrap("list the secrets in "+namespace, err)
	}
	return l.Items, nil
}

// RewriteSecret writes a Secret again as it is: the API server stores it
// with its encryption configuration's writing key. One that is gone is
// not an error; a conflict (someone wrote it meanwhile, so it is stored
// anew already) neither.
func (c *Client) RewriteSecret(ctx context.Context, namespace, name string) error {
	api, err := c.api(ctx)
	if err != nil {
		return err
	}
	s, err := api.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if err == nil {
		_, err = api.CoreV1().Secrets(namespace).Update(ctx, s, metav1.UpdateOptions{})
	}
	err = wrap("rewrite secret "+namespace+"/"+name, err)
	if IsNotFound(err) || IsConflict(err) {
		return nil
	}
	return err
}

// DeleteSecret deletes a Secret; one that is gone is not an error.
func (c *Client) DeleteSecret(ctx context.Context, namespace, name string) error {
	api, err := c.api(ctx)
	if err != nil {
		return err
	}
	err = wrap("delete secret "+namespace+"/"+name, api.CoreV1().Secrets(namespace).Delete(ctx, name, metav1.DeleteOptions{}))
	if IsNotFound(err) {
		return nil
	}
	return err
}

// ConfigMap reads a ConfigMap; a missing one is ErrNotFound.
func (c *Client) ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error) {
	api, err := c.api(ctx)
	if err != nil {
		return nil, err
	}
	m, err := api.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
	return m, wrap("get configmap "+namespace+"/"+name, err)
}

// WaitDeployment waits until the Deployment's rollout is complete, as
// `kubectl rollout status` does: every replica updated and available, no
// old one left.
func (c *Client) WaitDeployment(ctx context.Context, namespace, name string, timeout time.Duration) error {
	api, err := c.api(ctx)
	if err != nil {
		return err
	}
	return wait.For(ctx, timeout, func() (bool, error) {
		d, err := api.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, wrap("get deployment "+namespace+"/"+name, err)
		}
		return RolledOut(d), nil
	})
}

// RolledOut reports whether a Deployment's newest revision is everywhere.
func RolledOut(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.Replicas == want && s.AvailableReplicas == want
}

// Lock takes the kube-system Lease name for holder, so that several
// machines take turns (the control planes' renewal timers), waiting while
// another holder has it; one that died lets it go after ttl. waiting is
// told each time it waits. release gives the Lease back.
func (c *Client) Lock(ctx context.Context, name, holder string, ttl time.Duration, waiting func(holder string, err error)) (release func(), err error) {
	api, err := c.api(ctx)
	if err != nil {
		return nil, err
	}
	leases := api.CoordinationV1().Leases(metav1.NamespaceSystem)
	secs := int32(ttl / time.Second)
	deadline := time.Now().Add(ttl + time.Minute)
	for {
		now := metav1.NewMicroTime(time.Now())
		l, err := leases.Get(ctx, name, metav1.GetOptions{})
		other := ""
		switch err = wrap("get lease kube-system/"+name, err); {
		case IsNotFound(err):
			_, err = leases.Create(ctx, &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now},
			}, metav1.CreateOptions{})
			err = wrap("create lease kube-system/"+name, err)
		case err != nil:
			return nil, err
		case l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" || *l.Spec.HolderIdentity == holder ||
			l.Spec.RenewTime == nil || time.Since(l.Spec.RenewTime.Time) > ttl:
			l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.AcquireTime, l.Spec.RenewTime = &holder, &secs, &now, &now
			_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
			err = wrap("take lease kube-system/"+name, err)
		default:
			other = *l.Spec.HolderIdentity
		}
		if err == nil && other == "" {
			return func() {
				ctx := context.WithoutCancel(ctx)
				if l, err := leases.Get(ctx, name, metav1.GetOptions{}); err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == holder {
					empty := ""
					l.Spec.HolderIdentity = &empty
					_, _ = leases.Update(ctx, l, metav1.UpdateOptions{})
				}
			}, nil
		}
		if time.Now().After(deadline) {
			return nil, &Error{Op: "take lease kube-system/" + name, Kind: ErrRefused, Err: fmt.Errorf("held by %s", other)}
		}
		if waiting != nil {
			waiting(other, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Second):
		}
	}
}

// Hold takes the kube-system Lease name as Lock does and keeps it while
// the client is open: renewed every ttl/3, given back when the client is
// closed. A holder that is killed lets it go after ttl, so a run that
// takes much longer than ttl (an upgrade) still holds it throughout.
func (c *Client) Hold(ctx context.Context, name, holder string, ttl time.Duration, waiting func(holder string, err error)) error {
	release, err := c.Lock(ctx, name, holder, ttl, waiting)
	if err != nil {
		return err
	}
	api, err := c.api(ctx)
	if err != nil {
		release()
		return err
	}
	leases := api.CoordinationV1().Leases(metav1.NamespaceSystem)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(ttl / 3)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ttl/3)
			if l, err := leases.Get(rctx, name, metav1.GetOptions{}); err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == holder {
				now := metav1.NewMicroTime(time.Now())
				l.Spec.RenewTime = &now
				if _, err := leases.Update(rctx, l, metav1.UpdateOptions{}); err != nil {
					c.logf("renew lease kube-system/%s: %v", name, err)
				}
			}
			cancel()
		}
	}()
	c.onClose(func() {
		close(stop)
		<-done
		release()
	})
	return nil
}

// CreateSecret creates a Secret; one of that name already there is
// ErrRefused.
func (c *Client) CreateSecret(ctx context.Context, s *corev1.Secret) error {
	api, err := c.api(ctx)
	if err != nil {
		return err
	}
	_, err = api.CoreV1().Secrets(s.Namespace).Create(ctx, s, metav1.CreateOptions{FieldManager: FieldManager})
	return wrap("create secret "+s.Namespace+"/"+s.Name, err)
}
