package phases

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/internal/host"
)

// certsPhase makes the cluster's PKI in the state directory on the admin
// machine (certs.Generate: keeps what is valid). The component phases
// then copy to each host only the files it needs.
type certsPhase struct{ env *Env }

func (*certsPhase) Title() string { return "Certificates and kubeconfigs (in the state directory)" }

func (p *certsPhase) Prepare(context.Context) error {
	// A CA made before this run is a cluster that may hold Secrets
	// written before kubeforge encrypted them.
	_, err := os.Stat(p.env.StateDir.CACert())
	existing := err == nil
	results, err := certs.Generate(p.env.PKI, p.env.StateDir.PKI(), certs.Options{DryRun: p.env.DryRun})
	if err != nil {
		return err
	}
	enc, err := certs.EnsureEncryption(p.env.StateDir.PKI(), time.Now(), existing, p.env.DryRun)
	if err != nil {
		return err
	}
	results = append(results, enc...)
	for _, r := range results {
		if r.Action != certs.Kept {
			verb := string(r.Action)
			if p.env.DryRun {
				verb = "would be " + verb
			}
			line := fmt.Sprintf("[certs] %s %s", r.Name, verb)
			if r.Reason != "" {
				line += " (" + r.Reason + ")"
			}
			fmt.Fprintln(p.env.Out, line)
		}
	}
	return nil
}

// The work is done in Prepare, once; on the hosts there is nothing to do.
func (*certsPhase) Run(context.Context, *host.Host) error { return nil }
func (*certsPhase) Plan(context.Context, *host.Host) ([]string, error) {
	return nil, nil
}

// pkiFiles reads files of the state directory for a host: rel (under the
// state directory) -> path on the host. Keys, kubeconfigs and the
// encryption configuration get 0600.
func (env *Env) pkiFiles(pairs ...string) ([]File, error) {
	var out []File
	for i := 0; i+1 < len(pairs); i += 2 {
		rel, dst := pairs[i], pairs[i+1]
		mode := host.FileMode{Perm: 0o644}
		if strings.HasSuffix(rel, ".key") || strings.HasSuffix(rel, ".conf") || rel == certs.EncryptionConfigPath() {
			mode.Perm = 0o600
		}
		data, err := os.ReadFile(env.StateDir.File(rel))
		if errors.Is(err, os.ErrNotExist) && env.DryRun {
			// The certs phase would have made it.
			out = append(out, File{Path: dst, Mode: mode, Pending: true})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w (run 'kubeforge init phase certs' or 'kubeforge certs generate')", err)
		}
		out = append(out, File{Path: dst, Data: data, Mode: mode})
	}
	return out, nil
}

// encrypts reports whether the API servers encrypt Secrets: the state
// directory has the configuration, or this run's certs step makes it.
func (env *Env) encrypts() bool {
	if _, err := os.Stat(env.StateDir.File(certs.EncryptionConfigPath())); err == nil {
		return true
	}
	return env.DryRun && slices.Contains(env.Phases, "certs")
}

// pair lists a certificate and its key: pki/<base>.crt/.key -> dir/<base>.
func pair(rel, hostDir, base string) []string {
	return []string{
		path.Join(rel, base+certs.CertExt), path.Join(hostDir, base+certs.CertExt),
		path.Join(rel, base+certs.KeyExt), path.Join(hostDir, base+certs.KeyExt),
	}
}

func paths(files []File) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.Path
	}
	return out
}

// caPEM returns the cluster CA certificate from the state directory; nil
// without error on a dry run before it exists.
func (env *Env) caPEM() ([]byte, error) {
	data, err := env.StateDir.ReadCA()
	if errors.Is(err, os.ErrNotExist) && env.DryRun {
		return nil, nil
	}
	return data, err
}
