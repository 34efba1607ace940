package cluster

import (
	"reflect"
	"testing"
)

func TestDeprecatedAPIs(t *testing.T) {
	metrics := `# HELP apiserver_requested_deprecated_apis [STABLE] Gauge of deprecated APIs that have been requested, broken out by API group, version, resource, subresource, and removed_release.
# TYPE apiserver_requested_deprecated_apis gauge
apiserver_requested_deprecated_apis{group="flowcontrol.apiserver.k8s.io",removed_release="1.38",resource="flowschemas",subresource="",version="v1beta3"} 1
apiserver_requested_deprecated_apis{group="",removed_release="",resource="componentstatuses",subresource="",version="v1"} 1
apiserver_requested_deprecated_apis{group="",removed_release="",resource="componentstatuses",subresource="",version="v1"} 1
apiserver_requested_deprecated_apis{group="batch",removed_release="1.40",resource="cronjobs",subresource="",version="v1beta1"} 0
apiserver_request_total{code="200"} 5
`
	got := deprecatedAPIs(metrics)
	want := []DeprecatedAPI{
		{Group: "flowcontrol.apiserver.k8s.io", Version: "v1beta3", Resource: "flowschemas", RemovedRelease: "1.38"},
		{Version: "v1", Resource: "componentstatuses"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
	if got[0].String() != "flowcontrol.apiserver.k8s.io/v1beta3 flowschemas" || got[1].String() != "v1 componentstatuses" {
		t.Errorf("String: %q %q", got[0], got[1])
	}
}
