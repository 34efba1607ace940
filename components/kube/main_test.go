package main

import (
	"reflect"
	"testing"
)

func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		argv    []string
		want    []string
		wantErr bool
	}{
		{argv: []string{"/usr/local/bin/kubelet", "--version"}, want: []string{"/usr/local/bin/kubelet", "--version"}},
		{argv: []string{"kube", "kubelet", "--version"}, want: []string{"kubelet", "--version"}},
		{argv: []string{"/opt/kube", "etcdctl", "get", "/a"}, want: []string{"etcdctl", "get", "/a"}},
		{argv: []string{"kube"}, want: nil},
		{argv: []string{"kube", "--list"}, want: nil},
		{argv: []string{"kube", "kube-dns"}, wantErr: true},
		{argv: []string{}, wantErr: true},
	} {
		got, err := resolve(tc.argv)
		if (err != nil) != tc.wantErr || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("resolve(%q) = %q, %v; want %q (error %v)", tc.argv, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestEveryComponentHasAnEntry(t *testing.T) {
	want := []string{"etcd", "etcdctl", "etcdutl", "kube-apiserver", "kube-controller-manager", "kube-proxy", "kube-scheduler", "kubectl", "kubelet"}
	if got := names(); !reflect.DeepEqual(got, want) {
		t.Fatalf("components %v, want %v", got, want)
	}
	for n, f := range components {
		if f == nil {
			t.Errorf("%s has no entry point", n)
		}
	}
}
