package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseSubnetEnv(t *testing.T) {
	env, err := parseSubnetEnv("subnet.env", []byte(
		"FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if env.network.String() != "10.244.0.0/16" || env.subnet.IP.String() != "10.244.3.1" || env.mtu != 1450 || !env.ipMasq {
		t.Fatalf("parsed %+v", env)
	}
}

func TestParseSubnetEnvErrors(t *testing.T) {
	for name, tc := range map[string]struct{ data, want string }{
		"no network": {"FLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_MTU=1450\n", "FLANNEL_NETWORK is missing"},
		"no subnet":  {"FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_MTU=1450\n", "FLANNEL_SUBNET is missing"},
		"no mtu":     {"FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\n", "FLANNEL_MTU is missing"},
		"bad cidr":   {"FLANNEL_NETWORK=10.244.0.0\n", "FLANNEL_NETWORK"},
		"bad mtu":    {"FLANNEL_MTU=big\n", "FLANNEL_MTU"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseSubnetEnv("/run/flannel/subnet.env", []byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "/run/flannel/subnet.env") {
				t.Fatalf("error %v, want one naming the file and %q", err, tc.want)
			}
		})
	}
}

func TestDelegateConf(t *testing.T) {
	conf, err := loadNetConf([]byte(`{"cniVersion":"1.0.0","name":"cbr0","type":"flannel",
		"delegate":{"hairpinMode":true,"isDefaultGateway":true,"mtu":1400}}`))
	if err != nil {
		t.Fatal(err)
	}
	env, err := parseSubnetEnv("x", []byte("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := delegateConf(conf, env)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"cniVersion": "1.0.0", "name": "cbr0", "type": "bridge",
		"isGateway": true, "isDefaultGateway": true, "hairpinMode": true,
		"ipMasq": false, // flanneld masquerades
		"mtu":    float64(1400),
		"ipam": map[string]any{
			"type":   "host-local",
			"ranges": []any{[]any{map[string]any{"subnet": "10.244.3.0/24", "gateway": "10.244.3.1"}}},
			"routes": []any{map[string]any{"dst": "10.244.0.0/16"}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("delegate\n got %v\nwant %v", got, want)
	}
}

func TestDelegatePersistence(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "flannel")
	if err := saveDelegate(dir, "c1", []byte(`{"type":"bridge"}`)); err != nil {
		t.Fatal(err)
	}
	got, err := loadDelegate(dir, "c1")
	if err != nil || string(got) != `{"type":"bridge"}` {
		t.Fatalf("load = %q, %v", got, err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v, want 0700", fi.Mode().Perm())
	}
	if err := removeDelegate(dir, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := removeDelegate(dir, "c1"); err != nil {
		t.Fatalf("second remove must be a no-op: %v", err)
	}
	if _, err := loadDelegate(dir, "c1"); !os.IsNotExist(err) {
		t.Fatalf("after remove: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}

func TestWaitSubnetEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "subnet.env")
	if _, err := waitSubnetEnv(path, 150*time.Millisecond); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "is flanneld running") {
		t.Fatalf("no file: got %v, want a not-exist error asking about flanneld", err)
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		_ = os.WriteFile(path+".tmp", []byte("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"), 0o644)
		_ = os.Rename(path+".tmp", path)
	}()
	env, err := waitSubnetEnv(path, 5*time.Second)
	if err != nil {
		t.Fatalf("file written after 200ms: %v", err)
	}
	if env.subnet.String() != "10.244.3.1/24" || env.mtu != 1450 {
		t.Fatalf("got subnet %v mtu %d", env.subnet, env.mtu)
	}
}
