package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
)

// objects decodes a manifest of YAML documents.
func objects(manifest []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096)
	var out []*unstructured.Unstructured
	for {
		var o unstructured.Unstructured
		err := dec.Decode(&o.Object)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		if len(o.Object) == 0 {
			continue
		}
		out = append(out, &o)
	}
}

// dynamicAPI is what applying arbitrary objects needs: a dynamic client
// and where each kind lives.
type dynamicAPI struct {
	dyn    dynamic.Interface
	mapper meta.RESTMapper
}

func (c *Client) dynamic(ctx context.Context) (*dynamicAPI, error) {
	h, err := c.ControlHost(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := c.dyns[h.Name()]; ok {
		return d, nil
	}
	cfg, err := c.restConfig(h)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, wrap("a dynamic API client", err)
	}
	api, ok := c.apis[h.Name()]
	if !ok {
		if api, err = c.newAPI(h); err != nil {
			return nil, err
		}
		c.apis[h.Name()] = api
	}
	d := &dynamicAPI{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(api.Discovery()))}
	c.dyns[h.Name()] = d
	return d, nil
}

func (d *dynamicAPI) resource(o *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := o.GroupVersionKind()
	m, err := d.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, wrap("find "+gvk.String(), err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return d.dyn.Resource(m.Resource).Namespace(o.GetNamespace()), nil
	}
	return d.dyn.Resource(m.Resource), nil
}

// Apply server-side applies every object of the manifest as kubeforge
// (taking over fields others set: kubeforge owns these objects). The
// manifest travels as request bodies: secrets never appear in a command
// line or a log.
func (c *Client) Apply(ctx context.Context, manifest []byte) error {
	objs, err := objects(manifest)
	if err != nil {
		return err
	}
	d, err := c.dynamic(ctx)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := d.apply(ctx, o, false, nil); err != nil {
			return err
		}
	}
	return nil
}

func (d *dynamicAPI) apply(ctx context.Context, o *unstructured.Unstructured, dryRun bool, out **unstructured.Unstructured) error {
	r, err := d.resource(o)
	if err != nil {
		return err
	}
	force := true
	opts := metav1.PatchOptions{FieldManager: FieldManager, Force: &force}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	data, err := o.MarshalJSON()
	if err != nil {
		return err
	}
	res, err := r.Patch(ctx, o.GetName(), types.ApplyPatchType, data, opts)
	if err != nil {
		return wrap("apply "+objectName(o), err)
	}
	if out != nil {
		*out = res
	}
	return nil
}

// Diff names the objects of the manifest that applying it would create or
// change (a dry-run apply compared with what the cluster holds).
func (c *Client) Diff(ctx context.Context, manifest []byte) ([]string, error) {
	objs, err := objects(manifest)
	if err != nil {
		return nil, err
	}
	d, err := c.dynamic(ctx)
	if err != nil {
		return nil, err
	}
	var changed []string
	for _, o := range objs {
		r, err := d.resource(o)
		if err != nil {
			return nil, err
		}
		live, err := r.Get(ctx, o.GetName(), metav1.GetOptions{})
		if err = wrap("get "+objectName(o), err); IsNotFound(err) {
			changed = append(changed, objectName(o))
			continue
		} else if err != nil {
			return nil, err
		}
		var after *unstructured.Unstructured
		if err := d.apply(ctx, o, true, &after); err != nil {
			return nil, err
		}
		if !reflect.DeepEqual(comparable(live), comparable(after)) {
			changed = append(changed, objectName(o))
		}
	}
	return changed, nil
}

// comparable is an object without what every write changes.
func comparable(o *unstructured.Unstructured) map[string]any {
	c := o.DeepCopy()
	for _, f := range []string{"managedFields", "resourceVersion", "generation"} {
		unstructured.RemoveNestedField(c.Object, "metadata", f)
	}
	return c.Object
}

// objectName names an object as kubectl diff does
// (group.version.Kind.namespace.name), a space for an empty namespace.
func objectName(o *unstructured.Unstructured) string {
	gvk := o.GroupVersionKind()
	parts := []string{}
	if gvk.Group != "" {
		parts = append(parts, gvk.Group)
	}
	parts = append(parts, gvk.Version, gvk.Kind, o.GetNamespace(), o.GetName())
	return strings.ReplaceAll(strings.Join(parts, "."), "..", " ")
}
