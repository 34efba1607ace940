package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

const (
	defaultSubnetFile = "/run/flannel/subnet.env"
	defaultDataDir    = "/var/lib/cni/flannel"
	defaultDelegate   = "bridge"
)

// NetConf is this plugin's entry in the network configuration list.
type NetConf struct {
	types.NetConf

	// SubnetFile is where flanneld writes the node's lease.
	SubnetFile string `json:"subnetFile,omitempty"`
	// DataDir keeps the delegated configuration of each container.
	DataDir string `json:"dataDir,omitempty"`
	// Delegate holds settings passed to the delegated plugin (bridge by
	// default), such as hairpinMode or isDefaultGateway.
	Delegate map[string]any `json:"delegate,omitempty"`
}

// subnetEnv is what flanneld wrote for this node.
type subnetEnv struct {
	network *net.IPNet // the whole cluster pod network
	subnet  *net.IPNet // this node's pod subnet, gateway address first
	mtu     int
	ipMasq  bool // flanneld masquerades itself, the bridge must not
}

func loadNetConf(data []byte) (*NetConf, error) {
	conf := &NetConf{SubnetFile: defaultSubnetFile, DataDir: defaultDataDir}
	if err := json.Unmarshal(data, conf); err != nil {
		return nil, fmt.Errorf("flannel: parse network configuration: %w", err)
	}
	return conf, nil
}

// readSubnetEnv parses the KEY=VALUE lines of flanneld's subnet file.
func readSubnetEnv(path string) (*subnetEnv, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("flannel: %w (is flanneld running on this node?)", err)
	}
	return parseSubnetEnv(path, data)
}

// leaseWait bounds how long an ADD waits for flanneld's lease.
const leaseWait = 30 * time.Second

// waitSubnetEnv reads the subnet file, waiting up to timeout for flanneld
// to write it. The node's CNI configuration is in place before flanneld
// has its lease (the node is Ready as soon as it registers), so a pod
// placed on the node in those first seconds waits here instead of
// failing its sandbox and waiting out the kubelet's back-off.
func waitSubnetEnv(path string, timeout time.Duration) (*subnetEnv, error) {
	deadline := time.Now().Add(timeout)
	for {
		env, err := readSubnetEnv(path)
		if err == nil || !errors.Is(err, fs.ErrNotExist) || time.Now().After(deadline) {
			return env, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func parseSubnetEnv(path string, data []byte) (*subnetEnv, error) {
	env := &subnetEnv{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		var err error
		switch key {
		case "FLANNEL_NETWORK":
			_, env.network, err = net.ParseCIDR(value)
		case "FLANNEL_SUBNET":
			var ip net.IP
			ip, env.subnet, err = net.ParseCIDR(value)
			if err == nil {
				env.subnet.IP = ip // keep the gateway address, not the network
			}
		case "FLANNEL_MTU":
			env.mtu, err = strconv.Atoi(value)
		case "FLANNEL_IPMASQ":
			env.ipMasq, err = strconv.ParseBool(value)
		}
		if err != nil {
			return nil, fmt.Errorf("flannel: %s: %s: %w", path, key, err)
		}
	}
	switch {
	case env.network == nil:
		return nil, fmt.Errorf("flannel: %s: FLANNEL_NETWORK is missing", path)
	case env.subnet == nil:
		return nil, fmt.Errorf("flannel: %s: FLANNEL_SUBNET is missing", path)
	case env.mtu <= 0:
		return nil, fmt.Errorf("flannel: %s: FLANNEL_MTU is missing", path)
	}
	return env, nil
}

// delegateConf builds the bridge + host-local configuration for this node.
// Settings in conf.Delegate win over the derived ones, except ipam.
func delegateConf(conf *NetConf, env *subnetEnv) ([]byte, error) {
	d := map[string]any{
		"type":      defaultDelegate,
		"isGateway": true,
		"ipMasq":    !env.ipMasq,
		"mtu":       env.mtu,
	}
	for k, v := range conf.Delegate {
		d[k] = v
	}
	d["name"] = conf.Name
	d["cniVersion"] = conf.CNIVersion
	network := &net.IPNet{IP: env.subnet.IP.Mask(env.subnet.Mask), Mask: env.subnet.Mask}
	d["ipam"] = map[string]any{
		"type":   "host-local",
		"ranges": [][]map[string]string{{{"subnet": network.String(), "gateway": env.subnet.IP.String()}}},
		"routes": []map[string]string{{"dst": env.network.String()}},
	}
	return json.Marshal(d)
}

func saveDelegate(dir, containerID string, conf []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("flannel: %w", err)
	}
	path := filepath.Join(dir, containerID)
	tmp, err := os.CreateTemp(dir, "."+containerID+".*")
	if err != nil {
		return fmt.Errorf("flannel: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(conf); err != nil {
		tmp.Close()
		return fmt.Errorf("flannel: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("flannel: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("flannel: %w", err)
	}
	return nil
}

func loadDelegate(dir, containerID string) ([]byte, error) {
	return os.ReadFile(filepath.Join(dir, containerID))
}

func removeDelegate(dir, containerID string) error {
	err := os.Remove(filepath.Join(dir, containerID))
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("flannel: %w", err)
	}
	return nil
}
