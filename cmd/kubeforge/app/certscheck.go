package app

import (
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/kubeforge/kubeforge/certs"
	"github.com/kubeforge/kubeforge/internal/cluster"
)

// certStatus is a row's verdict.
func certStatus(c certs.HostCert, warn time.Duration) string {
	switch {
	case c.Error != "":
		return "unreadable: " + c.Error
	case c.Expired():
		return "EXPIRED"
	case c.Residual < warn:
		return "expires soon"
	}
	return "ok"
}

func reportClusterCerts(deps *Deps, opts *CertsCheckOptions, run *actionRun, found map[string][]certs.HostCert,
	pending []cluster.CSR, pendingErr error) error {
	var rows []certs.HostCert
	var unreachable []string
	for _, h := range run.Cluster.Spec.Hosts {
		hc, ok := found[h.Name]
		if !ok {
			unreachable = append(unreachable, h.Name)
			rows = append(rows, certs.HostCert{Node: h.Name, Name: "-", Error: "not read: see the error below"})
			continue
		}
		sort.SliceStable(hc, func(i, j int) bool {
			if hc[i].IsCA != hc[j].IsCA {
				return !hc[i].IsCA
			}
			return hc[i].Path < hc[j].Path
		})
		rows = append(rows, hc...)
	}
	// The admin machine's own credentials: kubectl and kubeforge use them.
	now := time.Now()
	if entries, err := certs.Check(run.Env.StateDir.PKI(), now); err == nil {
		for _, e := range entries {
			if e.Path == certs.AdminConf || e.Path == certs.SuperAdminConf {
				rows = append(rows, certs.HostCert{Node: "(admin machine)", Name: e.Name, Path: run.Env.StateDir.File(e.Path),
					Subject: e.Subject, NotAfter: e.NotAfter, Residual: e.Residual, CA: e.CA, RotatedBy: certs.RotatedByKubeforge, Error: e.Error})
			}
		}
	}
	var expired, soon, broken int
	for _, r := range rows {
		switch st := certStatus(r, opts.WarnWithin); {
		case st == "EXPIRED":
			expired++
		case st == "expires soon":
			soon++
		case r.Error != "":
			broken++
		}
	}
	if opts.Output == "json" {
		type row struct {
			certs.HostCert
			ResidualText string `json:"residualText,omitempty"`
			Status       string `json:"status"`
		}
		report := struct {
			Cluster     string        `json:"cluster"`
			WarnWithin  string        `json:"warnWithin"`
			Certs       []row         `json:"certificates"`
			PendingCSRs []cluster.CSR `json:"pendingCSRs"`
			Unreachable []string      `json:"unreachable,omitempty"`
		}{Cluster: run.Cluster.Metadata.Name, WarnWithin: opts.WarnWithin.String(), PendingCSRs: pending, Unreachable: unreachable}
		for _, r := range rows {
			report.Certs = append(report.Certs, row{HostCert: r, Status: certStatus(r, opts.WarnWithin), ResidualText: residualText(r.Error, r.Residual)})
		}
		if report.PendingCSRs == nil {
			report.PendingCSRs = []cluster.CSR{}
		}
		if err := writeJSON(deps.IO.Out, report); err != nil {
			return err
		}
	} else {
		out := deps.IO.Out
		fmt.Fprintln(out)
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tCERTIFICATE\tEXPIRES\tRESIDUAL TIME\tSIGNED BY\tRENEWED BY\tSTATUS")
		for _, r := range rows {
			if r.Error != "" {
				fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t%s\n", r.Node, r.Name, certStatus(r, opts.WarnWithin))
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Node, r.Name, r.NotAfter.Format("Jan 02, 2006 15:04 MST"),
				humanDuration(r.Residual), r.CA, r.RotatedBy, certStatus(r, opts.WarnWithin))
		}
		tw.Flush()
		switch {
		case pendingErr != nil:
			fmt.Fprintf(out, "\nPending certificate requests: not read (%v)\n", pendingErr)
		case len(pending) > 0:
			fmt.Fprintf(out, "\nCertificate requests waiting for approval:\n")
			tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSIGNER\tREQUESTOR\tAGE")
			for _, c := range pending {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, c.Signer, c.Requestor, humanDuration(time.Since(c.Created)))
			}
			tw.Flush()
			fmt.Fprintln(out, "kubeforge approves kubelet serving requests that name only their node: 'kubeforge certs renew -f FILE' (or its timer) does.")
		}
	}
	if expired+soon+broken == 0 {
		return nil
	}
	return &expiryProblem{summary: fmt.Sprintf("cluster %s: %s; renew with 'kubeforge certs renew all -f %s'",
		run.Cluster.Metadata.Name, expiryCounts(expired, soon, broken, opts.WarnWithin), run.File)}
}
