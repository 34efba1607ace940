package phases

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/internal/cluster"
	"github.com/kubeforge/kubeforge/internal/host"
	"github.com/kubeforge/kubeforge/internal/wait"
)

// The phases of `kubeforge secrets rotate-key`. A rotation has three
// states of the encryption configuration (certs.Encryption), each
// written to the state directory and taken by every API server (which
// reloads the file without a restart) before the next:
//
//	key-add    the new key reads (the old one still writes)
//	key-write  the new key writes (the old one still reads); then
//	           secrets-rewrite stores every Secret again, with the new
//	           key, and checks in etcd that none is left under another
//	key-drop   the old key goes
//
// Each state is computed from the state directory's configuration, so a
// rotation stopped anywhere is finished by running the command again: a
// rotation under way gets no other key. A cluster made before
// encryption takes the same path, identity (plaintext) in the old key's
// place.

// keyStage is one state of a rotation.
type keyStage string

const (
	stageAdd   keyStage = "add"
	stageWrite keyStage = "write"
	stageDrop  keyStage = "drop"
)

// keyStagePhase writes the stage's configuration in the state directory
// (Prepare) and takes each control plane onto it (Run).
type keyStagePhase struct {
	env   *Env
	stage keyStage
	// restarting lets one API server restart at a time, the others
	// reloading meanwhile.
	restarting sync.Mutex
}

func (p *keyStagePhase) Title() string {
	switch p.stage {
	case stageAdd:
		return "New encryption key, reading only, on every API server"
	case stageWrite:
		return "New key encrypts, on every API server"
	}
	return "Old keys dropped, on every API server"
}

// next is the stage's configuration, from the state directory's.
func (p *keyStagePhase) next() (e *certs.Encryption, note string, err error) {
	e, err = certs.ReadEncryption(p.env.StateDir.PKI())
	if err != nil {
		return nil, "", err
	}
	switch {
	case p.stage == stageAdd:
		if e == nil { // a cluster made before encryption
			e = &certs.Encryption{PlaintextWrites: true}
		}
		added, err := e.AddKey(time.Now())
		if err != nil {
			return nil, "", err
		}
		if !added {
			return e, fmt.Sprintf("a rotation is under way (to %s): finishing it", e.Newest().Name), nil
		}
		return e, fmt.Sprintf("key %s made", e.Newest().Name), nil
	case e == nil:
		return nil, "", errors.New("no encryption configuration in the state directory: run the key-add phase first")
	case p.stage == stageWrite:
		e.PromoteNewest()
		return e, fmt.Sprintf("key %s writes", e.Newest().Name), nil
	}
	if err := e.DropOld(); err != nil {
		return nil, "", err
	}
	return e, fmt.Sprintf("only key %s is left", e.Newest().Name), nil
}

func (p *keyStagePhase) Prepare(ctx context.Context) error {
	e, note, err := p.next()
	if err != nil {
		return err
	}
	if p.env.DryRun {
		fmt.Fprintf(p.env.Out, "[key-%s] would write the encryption configuration: %s\n", p.stage, note)
		return nil
	}
	if p.stage == stageAdd {
		if err := p.dropUploadedCerts(ctx); err != nil {
			return err
		}
	}
	changed, err := certs.WriteEncryption(p.env.StateDir.PKI(), e)
	if err != nil {
		return err
	}
	if changed {
		fmt.Fprintf(p.env.Out, "[key-%s] %s\n", p.stage, note)
	}
	return nil
}

// dropUploadedCerts deletes the certificates uploaded for control planes
// joining on their own: they hold the encryption configuration of before
// the rotation, with which a new control plane could not read the
// Secrets written after it.
func (p *keyStagePhase) dropUploadedCerts(ctx context.Context) error {
	if _, err := p.env.Client.Secret(ctx, "kube-system", CertsSecretName); cluster.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	if err := p.env.Client.DeleteSecret(ctx, "kube-system", CertsSecretName); err != nil {
		return err
	}
	fmt.Fprintf(p.env.Out, "[key-add] deleted kube-system/%s (it holds the old key): for a control plane to join on its own, run 'kubeforge init phase upload-certs' again\n", CertsSecretName)
	return nil
}

func (p *keyStagePhase) Plan(ctx context.Context, h *host.Host) ([]string, error) {
	if p.env.DryRun {
		return []string{"write the key-" + string(p.stage) + " configuration to " + EncryptionConfigFile + "; the API server reloads it"}, nil
	}
	f, err := p.file()
	if err != nil {
		return nil, err
	}
	return (Desired{Files: []File{f}}).Plan(ctx, h)
}

// file is the state directory's configuration, as the host gets it.
func (p *keyStagePhase) file() (File, error) {
	files, err := p.env.pkiFiles(certs.EncryptionConfigPath(), EncryptionConfigFile)
	if err != nil {
		return File{}, err
	}
	return files[0], nil
}

// reloadTimeout bounds the wait for an API server to reload its
// encryption configuration: it looks at the file once a minute.
const (
	reloadTimeout = 3 * time.Minute
	reloadPoll    = 3 * time.Second
)

// Run takes the host's API server onto the configuration. One that runs
// with --encryption-provider-config-automatic-reload reloads the file by
// itself and says which file it loaded in its metrics (the file's
// sha256): nothing restarts, no request fails. One whose unit must change
// first (a cluster made before encryption) is restarted on it, with the
// VIP moved away, one host at a time.
func (p *keyStagePhase) Run(ctx context.Context, h *host.Host) error {
	cp := &controlPlanePhase{env: p.env}
	api, _, err := cp.desired(h)
	if err != nil {
		return err
	}
	changes, err := api.Diff(ctx, h)
	if err != nil {
		return err
	}
	if len(changes.Restart)+len(changes.Start)+len(changes.Reload) > 0 {
		p.restarting.Lock()
		defer p.restarting.Unlock()
		return p.restart(ctx, h)
	}
	if _, err := api.Apply(ctx, h); err != nil {
		return err
	}
	var want string
	for _, f := range api.Files {
		if f.Path == EncryptionConfigFile {
			want = "sha256:" + host.SumOf(f.Data)
		}
	}
	var have string
	// The API server looks at the file once a minute, and its metrics
	// come whole (megabytes): every few seconds is soon enough.
	err = wait.Every(ctx, reloadTimeout, reloadPoll, func() (bool, error) {
		var err error
		have, err = p.env.Client.EncryptionConfigHash(ctx, h)
		return err == nil && have == want, nil
	})
	switch {
	case err == nil:
		return nil
	case have == "":
		return fmt.Errorf("the API server does not say which encryption configuration it loaded (no %s metric) after %s: %w; see journalctl -u kube-apiserver",
			"apiserver_encryption_config_controller_last_config_info", reloadTimeout, err)
	}
	return fmt.Errorf("the API server still encrypts with another configuration (%s, want %s) after %s: see 'journalctl -u kube-apiserver | grep -i encryption'; run the command again once fixed",
		have, want, reloadTimeout)
}

// restart takes the host's API server onto its files, the VIP moved away.
func (p *keyStagePhase) restart(ctx context.Context, h *host.Host) error {
	return withVIPAway(ctx, p.env, h, func() error { return (&controlPlanePhase{env: p.env}).Run(ctx, h) })
}

// secretsPrefix is where the API servers keep Secrets in etcd.
const secretsPrefix = "/registry/secrets/"

// secretsRewritePhase stores every Secret again through the API, so the
// writing key encrypts it, and checks in etcd that none is left stored
// otherwise: only then may the old keys go.
type secretsRewritePhase struct {
	env *Env
	// writer and etcd are read once (Prepare): Plan and the two checks
	// of Run ask the same.
	writer certs.EncryptionKey
	etcd   cluster.Etcd
}

func (*secretsRewritePhase) Title() string {
	return "Rewrite every Secret with the writing key, checked in etcd"
}

// Prepare reads the writing key and finds a healthy etcd member.
func (p *secretsRewritePhase) Prepare(ctx context.Context) error {
	if p.env.DryRun { // the steps before wrote nothing: Plan says what
		return nil
	}
	e, err := certs.ReadEncryption(p.env.StateDir.PKI())
	if err != nil {
		return err
	}
	if e == nil {
		return errors.New("no encryption configuration in the state directory: run 'kubeforge secrets rotate-key'")
	}
	var ok bool
	if p.writer, ok = e.Writer(); !ok {
		return errors.New("no key writes yet: the key-write phase comes first")
	}
	member, err := p.env.Client.HealthyEtcdMember(ctx)
	if err != nil {
		return err
	}
	p.etcd, err = p.env.Client.EtcdOn(ctx, member)
	return err
}

// stale lists the Secrets ("namespace/name") that etcd holds under
// another key than the writer, or in plaintext, and how many there are.
func (p *secretsRewritePhase) stale(ctx context.Context) (stale []string, total int, err error) {
	prefix := []byte(p.writer.StoragePrefix())
	stored, err := p.etcd.Stored(ctx, secretsPrefix, len(prefix))
	if err != nil {
		return nil, 0, err
	}
	for key, value := range stored {
		if !bytes.Equal(value, prefix) {
			stale = append(stale, strings.TrimPrefix(key, secretsPrefix))
		}
	}
	sort.Strings(stale)
	return stale, len(stored), nil
}

func (p *secretsRewritePhase) Plan(ctx context.Context, _ *host.Host) ([]string, error) {
	if p.env.DryRun {
		return []string{"rewrite every Secret not yet stored with the new key"}, nil
	}
	stale, total, err := p.stale(ctx)
	if err != nil || len(stale) == 0 {
		return nil, err
	}
	return []string{fmt.Sprintf("rewrite %d of %d Secrets", len(stale), total)}, nil
}

func (p *secretsRewritePhase) Run(ctx context.Context, _ *host.Host) error {
	stale, total, err := p.stale(ctx)
	if err != nil {
		return err
	}
	for _, s := range stale {
		ns, name, _ := strings.Cut(s, "/")
		if err := p.env.Client.RewriteSecret(ctx, ns, name); err != nil {
			return err
		}
	}
	// A conflict or a Secret written meanwhile is stored with the writer
	// already; anything else still stale is a reason to keep the old key.
	left, _, err := p.stale(ctx)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("%d Secrets are still stored without key %s (%s): the old key stays; run the command again",
			len(left), p.writer.Name, strings.Join(first(left, 5), ", "))
	}
	fmt.Fprintf(p.env.Out, "[secrets-rewrite] %d of %d Secrets rewritten; all are encrypted with key %s\n", len(stale), total, p.writer.Name)
	return nil
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], "…")
	}
	return s
}

// KeyStatus is the state directory's encryption of Secrets, for status.
type KeyStatus struct {
	// Key is the writing key's name; "" when none writes.
	Key string `json:"key,omitempty"`
	// Created is when it was made (zero if its name does not say).
	Created time.Time `json:"created,omitempty"`
	// Problem says why Secrets are not (all) encrypted with one key, and
	// what to run.
	Problem string `json:"problem,omitempty"`
}

// EncryptionStatus reads the state directory's encryption configuration.
func EncryptionStatus(env *Env) KeyStatus {
	e, err := certs.ReadEncryption(env.StateDir.PKI())
	switch {
	case err != nil:
		return KeyStatus{Problem: err.Error()}
	case e == nil:
		return KeyStatus{Problem: "Secrets are not encrypted (a cluster made before encryption): run 'kubeforge secrets rotate-key'"}
	}
	w, ok := e.Writer()
	if !ok {
		return KeyStatus{Problem: "Secrets are still written in plaintext: run 'kubeforge secrets rotate-key' to finish"}
	}
	st := KeyStatus{Key: w.Name}
	st.Created, _ = w.Created()
	if !e.Settled() {
		st.Problem = "a key rotation is under way: run 'kubeforge secrets rotate-key' to finish it"
	}
	return st
}
