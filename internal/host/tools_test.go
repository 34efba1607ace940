package host

import (
	"reflect"
	"testing"
)

func TestPackageEndpoints(t *testing.T) {
	out := `source=http://deb.debian.org/debian
source=http://deb.debian.org/debian
source=https://security.debian.org/debian-security
source=http://mirror.example:8080/debian
source=http://evil$(touch /x)/debian
junk
`
	eps, local := packageEndpoints(out)
	want := []endpoint{{"deb.debian.org", "80"}, {"security.debian.org", "443"}, {"mirror.example", "8080"}}
	if local || !reflect.DeepEqual(eps, want) {
		t.Errorf("got %v local=%v, want %v", eps, local, want)
	}
	eps, _ = packageEndpoints(out + "proxy=http://proxy.lan:3128\n")
	if !reflect.DeepEqual(eps, []endpoint{{"proxy.lan", "3128"}}) {
		t.Errorf("with a proxy: %v, want only the proxy", eps)
	}
	if _, local := packageEndpoints("source=file:///srv/mirror\n"); !local {
		t.Errorf("a file: source is local")
	}
}

func TestMissingTools(t *testing.T) {
	f, err := parseFacts("os_id=rocky\narch=x86_64\npkg=dnf\nmissing_tool=conntrack\nmissing_tool=socat\ncontainerd_unit=/usr/lib/systemd/system/containerd.service\nkubelet_configured=1\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.MissingToolPackages(); !reflect.DeepEqual(got, []string{"conntrack-tools", "socat"}) {
		t.Errorf("packages: %v", got)
	}
	if got := f.DescribeMissingTools(); got != "conntrack (package conntrack-tools), socat (package socat)" {
		t.Errorf("described: %q", got)
	}
	if !f.KubeletConfigured || f.ContainerdUnit != "/usr/lib/systemd/system/containerd.service" {
		t.Errorf("facts: %+v", f)
	}
}
