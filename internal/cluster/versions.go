package cluster

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeforge/kubeforge/internal/host"
)

// ServerVersion is the version the API server on h reports (/version's
// gitVersion, v1.36.5), asked through h itself, not the VIP.
func (c *Client) ServerVersion(ctx context.Context, h *host.Host) (string, error) {
	api, err := c.apiThrough(h)
	if err != nil {
		return "", err
	}
	body, err := api.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Raw()
	if err != nil {
		return "", wrap("read the version of the API server on "+h.Name(), err)
	}
	v := gitVersion.FindSubmatch(body)
	if v == nil {
		return "", &Error{Op: "read the version of the API server on " + h.Name(), Kind: ErrInvalidAnswer,
			Err: fmt.Errorf("no gitVersion in %.200q", body)}
	}
	return string(v[1]), nil
}

var gitVersion = regexp.MustCompile(`"gitVersion":\s*"([^"]+)"`)

// DeprecatedAPI is a deprecated API that clients asked an API server for
// since it started (its apiserver_requested_deprecated_apis metric).
type DeprecatedAPI struct {
	Group, Version, Resource string
	RemovedRelease           string // "1.38", or "" when no removal is planned
}

func (d DeprecatedAPI) String() string {
	gv := d.Version
	if d.Group != "" {
		gv = d.Group + "/" + d.Version
	}
	return gv + " " + d.Resource
}

// DeprecatedAPIs reads the deprecated APIs requested from the API server
// on h.
func (c *Client) DeprecatedAPIs(ctx context.Context, h *host.Host) ([]DeprecatedAPI, error) {
	api, err := c.apiThrough(h)
	if err != nil {
		return nil, err
	}
	body, err := api.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, wrap("read the metrics of the API server on "+h.Name(), err)
	}
	return deprecatedAPIs(string(body)), nil
}

const deprecatedMetric = "apiserver_requested_deprecated_apis{"

var metricLabel = regexp.MustCompile(`([a-z_]+)="([^"]*)"`)

func deprecatedAPIs(metrics string) []DeprecatedAPI {
	seen := map[DeprecatedAPI]bool{}
	var out []DeprecatedAPI
	for _, line := range strings.Split(metrics, "\n") {
		if !strings.HasPrefix(line, deprecatedMetric) {
			continue
		}
		labelPart, value, _ := strings.Cut(line[len(deprecatedMetric):], "} ")
		if strings.TrimSpace(value) == "0" {
			continue
		}
		var d DeprecatedAPI
		for _, m := range metricLabel.FindAllStringSubmatch(labelPart, -1) {
			switch m[1] {
			case "group":
				d.Group = m[2]
			case "version":
				d.Version = m[2]
			case "resource":
				d.Resource = m[2]
			case "removed_release":
				d.RemovedRelease = m[2]
			}
		}
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// BlockingPDB is a PodDisruptionBudget that allows no eviction now, and
// the nodes its pods run on: a drain of those nodes waits for it.
type BlockingPDB struct {
	Namespace, Name string
	Nodes           []string
	Reason          string // "minAvailable 3, 3 of 4 pods healthy"
}

func (b BlockingPDB) String() string { return b.Namespace + "/" + b.Name }

// BlockingPDBs lists the PodDisruptionBudgets that allow no disruption
// now and cover pods on a node.
func (c *Client) BlockingPDBs(ctx context.Context) ([]BlockingPDB, error) {
	api, err := c.api(ctx)
	if err != nil {
		return nil, err
	}
	pdbs, err := api.PolicyV1().PodDisruptionBudgets(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, wrap("list the PodDisruptionBudgets", err)
	}
	var out []BlockingPDB
	for _, p := range pdbs.Items {
		if p.Status.DisruptionsAllowed > 0 || p.Status.ExpectedPods == 0 || p.Spec.Selector == nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil || sel.Empty() {
			continue
		}
		pods, err := api.CoreV1().Pods(p.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return nil, wrap("list the pods of PodDisruptionBudget "+p.Namespace+"/"+p.Name, err)
		}
		nodes := map[string]bool{}
		for _, pod := range pods.Items {
			if pod.Spec.NodeName != "" {
				nodes[pod.Spec.NodeName] = true
			}
		}
		b := BlockingPDB{Namespace: p.Namespace, Name: p.Name,
			Reason: fmt.Sprintf("%d of %d pods healthy, %d must stay", p.Status.CurrentHealthy, p.Status.ExpectedPods, p.Status.DesiredHealthy)}
		for n := range nodes {
			b.Nodes = append(b.Nodes, n)
		}
		sort.Strings(b.Nodes)
		out = append(out, b)
	}
	return out, nil
}
