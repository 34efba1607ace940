package version

import (
	"fmt"
	"slices"
	"strings"

	"golang.org/x/mod/semver"
)

// KubernetesMinors are the Kubernetes minor releases this kubeforge builds
// and installs, oldest first; the newest is what `make bundle` builds. The
// Makefile's K8S_WINDOW and components/kube's module files follow this list
// (TestWindowIsBuilt).
var KubernetesMinors = []string{"1.35", "1.36", "1.37"}

// Minor is the "1.37" of "v1.37.2", or "" when v is not a release version.
func Minor(v string) string {
	if !semver.IsValid(v) || semver.Prerelease(v) != "" {
		return ""
	}
	return strings.TrimPrefix(semver.MajorMinor(v), "v")
}

// CheckKubernetes tells whether v (a release like v1.36.5) is in the window.
func CheckKubernetes(v string) error {
	if m := Minor(v); m != "" && slices.Contains(KubernetesMinors, m) {
		return nil
	}
	return fmt.Errorf("Kubernetes %s is not one this kubeforge installs (%s): build a bundle of one of those (make bundle K8S=%s)",
		v, strings.Join(KubernetesMinors, ", "), KubernetesMinors[len(KubernetesMinors)-1])
}
