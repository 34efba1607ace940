package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodesTable is the nodes as `kubectl get nodes -o wide` prints them: the
// API server's own table, every column.
func (c *Client) NodesTable(ctx context.Context) (string, error) {
	api, err := c.api(ctx)
	if err != nil {
		return "", err
	}
	raw, err := api.CoreV1().RESTClient().Get().Resource("nodes").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctx)
	if err != nil {
		return "", wrap("list the nodes", err)
	}
	var t metav1.Table
	if err := json.Unmarshal(raw, &t); err != nil {
		return "", &Error{Op: "list the nodes", Kind: ErrInvalidAnswer, Err: err}
	}
	return renderTable(&t), nil
}

// renderTable prints a table as kubectl does: headers in capitals, cells
// padded by three spaces.
func renderTable(t *metav1.Table) string {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 10, 4, 3, ' ', 0)
	heads := make([]string, len(t.ColumnDefinitions))
	for i, c := range t.ColumnDefinitions {
		heads[i] = strings.ToUpper(c.Name)
	}
	fmt.Fprintln(tw, strings.Join(heads, "\t"))
	for _, r := range t.Rows {
		cells := make([]string, len(r.Cells))
		for i, v := range r.Cells {
			cells[i] = fmt.Sprint(v)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
	return buf.String()
}
