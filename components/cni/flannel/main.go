// Command flannel is the CNI plugin for flannel networks, written for the
// kubeforge bundle (the upstream flannel-io/cni-plugin module is not
// available to this build).
//
// It is configured like upstream's plugin. On ADD it reads the node's pod
// subnet and the MTU that flanneld wrote to /run/flannel/subnet.env, builds
// a bridge + host-local configuration from them and delegates to the bridge
// plugin. The delegated configuration is saved per container, so DEL works
// after a reboot or a flanneld restart with a different lease.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// Version is set by the linker to the kubeforge version.
var Version = "dev"

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:   cmdAdd,
		Del:   cmdDel,
		Check: cmdCheck,
	}, version.All, "CNI flannel plugin (kubeforge) "+Version)
}

func cmdAdd(args *skel.CmdArgs) error {
	conf, err := loadNetConf(args.StdinData)
	if err != nil {
		return err
	}
	env, err := waitSubnetEnv(conf.SubnetFile, leaseWait)
	if err != nil {
		return err
	}
	delegate, err := delegateConf(conf, env)
	if err != nil {
		return err
	}
	if err := saveDelegate(conf.DataDir, args.ContainerID, delegate); err != nil {
		return err
	}
	result, err := invoke.DelegateAdd(context.TODO(), delegateType(delegate), delegate, nil)
	if err != nil {
		// Leave nothing behind: the runtime will not call DEL for a failed ADD
		// in every case, and host-local may have reserved an address.
		_ = invoke.DelegateDel(context.TODO(), delegateType(delegate), delegate, nil)
		_ = removeDelegate(conf.DataDir, args.ContainerID)
		return err
	}
	return types.PrintResult(result, conf.CNIVersion)
}

func cmdDel(args *skel.CmdArgs) error {
	conf, err := loadNetConf(args.StdinData)
	if err != nil {
		return err
	}
	delegate, err := loadDelegate(conf.DataDir, args.ContainerID)
	if errors.Is(err, os.ErrNotExist) {
		// Never added, or already deleted: DEL must be idempotent.
		return nil
	}
	if err != nil {
		return err
	}
	if err := invoke.DelegateDel(context.TODO(), delegateType(delegate), delegate, nil); err != nil {
		return err
	}
	return removeDelegate(conf.DataDir, args.ContainerID)
}

func cmdCheck(args *skel.CmdArgs) error {
	conf, err := loadNetConf(args.StdinData)
	if err != nil {
		return err
	}
	delegate, err := loadDelegate(conf.DataDir, args.ContainerID)
	if err != nil {
		return fmt.Errorf("flannel: no saved configuration for container %s: %w", args.ContainerID, err)
	}
	delegate, err = withPrevResult(delegate, conf.RawPrevResult)
	if err != nil {
		return err
	}
	return invoke.DelegateCheck(context.TODO(), delegateType(delegate), delegate, nil)
}

// delegateType returns the "type" of a saved delegate configuration.
func delegateType(conf []byte) string {
	var t struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(conf, &t)
	if t.Type == "" {
		return defaultDelegate
	}
	return t.Type
}

func withPrevResult(conf []byte, prev map[string]any) ([]byte, error) {
	if prev == nil {
		return conf, nil
	}
	m := map[string]any{}
	if err := json.Unmarshal(conf, &m); err != nil {
		return nil, fmt.Errorf("flannel: saved configuration: %w", err)
	}
	m["prevResult"] = prev
	return json.Marshal(m)
}
