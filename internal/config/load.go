package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// FieldError is one problem with the cluster file, at a field.
type FieldError struct {
	Path string // "spec.hosts[1].address"
	Line int    // 0 when unknown (a default, or a cross-field check)
	Msg  string
}

func (e FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Path, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Path, e.Msg)
}

// InvalidError lists every problem found in a cluster file.
type InvalidError struct {
	File   string
	Fields []FieldError
}

func (e *InvalidError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cluster file %s is invalid:", e.File)
	for _, f := range e.Fields {
		b.WriteString("\n  ")
		b.WriteString(f.Error())
	}
	return b.String()
}

// Load reads, strictly decodes, defaults and validates a cluster file.
// Warnings are problems that do not stop kubeforge (an even etcd count).
func Load(path string) (*Cluster, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("cluster file: %w", err)
	}
	return Parse(path, data)
}

// MaxFileSize bounds a cluster file: a few hundred hosts fit in far less.
const MaxFileSize = 1 << 20

// Parse is Load for data already read; name is used in messages.
func Parse(name string, data []byte) (*Cluster, []string, error) {
	if len(data) > MaxFileSize {
		return nil, nil, &InvalidError{File: name, Fields: []FieldError{{Path: "(file)",
			Msg: fmt.Sprintf("is %d bytes, over %d: is it the cluster file?", len(data), MaxFileSize)}}}
	}
	c, lines, err := decode(name, data)
	if err != nil {
		return nil, nil, err
	}
	present := func(path string) bool { _, ok := lines[path]; return ok }
	zeros := explicitZeros(c, present)
	SetDefaults(c)
	warnings, errs := validate(c, present)
	errs = append(zeros, errs...)
	if len(errs) > 0 {
		for i := range errs {
			if errs[i].Line == 0 {
				errs[i].Line = lines.line(errs[i].Path)
			}
		}
		return nil, warnings, &InvalidError{File: name, Fields: errs}
	}
	return c, warnings, nil
}

// Check defaults and validates a cluster put together in code (a node
// joining on its own adds itself to the published cluster). name is used
// in messages.
func Check(name string, c *Cluster) ([]string, error) {
	SetDefaults(c)
	warnings, errs := validate(c, nil)
	if len(errs) > 0 {
		return warnings, &InvalidError{File: name, Fields: errs}
	}
	return warnings, nil
}

// decode parses the YAML, rejects unknown fields with their line, and
// remembers the line of every field for validation messages.
func decode(name string, data []byte) (*Cluster, lineIndex, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, &InvalidError{File: name, Fields: []FieldError{{Path: "(file)", Msg: emptyFile}}}
		}
		return nil, nil, &InvalidError{File: name, Fields: []FieldError{syntaxError(err, data)}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, nil, &InvalidError{File: name, Fields: []FieldError{{Path: "(file)", Line: extra.Line, Msg: "holds more than one YAML document; put one Cluster in it"}}}
	}
	if len(root.Content) == 0 || root.Content[0].Kind == yaml.ScalarNode && root.Content[0].Tag == "!!null" {
		return nil, nil, &InvalidError{File: name, Fields: []FieldError{{Path: "(file)", Msg: emptyFile}}}
	}
	if root.Content[0].Kind != yaml.MappingNode {
		return nil, nil, &InvalidError{File: name, Fields: []FieldError{{Path: "(file)", Line: root.Content[0].Line,
			Msg: "is not a Cluster: it should be a mapping that starts with apiVersion: " + APIVersion}}}
	}
	lines := lineIndex{}
	var errs []FieldError
	checkFields(root.Content[0], reflect.TypeOf(Cluster{}), "", lines, &errs)
	if len(errs) > 0 {
		return nil, nil, &InvalidError{File: name, Fields: errs}
	}
	var c Cluster
	if err := root.Content[0].Decode(&c); err != nil {
		return nil, nil, &InvalidError{File: name, Fields: typeErrors(err, lines)}
	}
	return &c, lines, nil
}

// lineIndex maps a field path to its line in the file.
type lineIndex map[string]int

// line returns the line of path or of its nearest parent in the file.
func (l lineIndex) line(path string) int {
	for p := path; p != ""; {
		if n, ok := l[p]; ok {
			return n
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

// pathAt returns the deepest field path on a line.
// Several fields on one line (flow style, "hosts: [a, b]") cannot be told
// apart by line: their common parent is named then.
func (l lineIndex) pathAt(line int) string {
	var on []string
	for p, n := range l {
		if n == line {
			on = append(on, p)
		}
	}
	if len(on) == 0 {
		return "(value)"
	}
	sort.Strings(on)
	deepest := 0
	for _, p := range on {
		deepest = max(deepest, strings.Count(p, ".")+strings.Count(p, "["))
	}
	var top []string
	for _, p := range on {
		if strings.Count(p, ".")+strings.Count(p, "[") == deepest {
			top = append(top, p)
		}
	}
	if len(top) == 1 {
		return top[0]
	}
	common := top[0]
	for _, p := range top[1:] {
		for !strings.HasPrefix(p, common) {
			common = common[:len(common)-1]
		}
	}
	if i := strings.LastIndexAny(common, ".["); i > 0 && common != top[0] {
		common = common[:i]
	}
	if common == "" {
		return "(value)"
	}
	return common
}

// checkFields walks a YAML node against the Go type it decodes into and
// reports every key that is not a field, with its line and path.
func checkFields(n *yaml.Node, t reflect.Type, path string, lines lineIndex, errs *[]FieldError) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if path != "" {
		lines[path] = n.Line
	}
	switch {
	case t == reflect.TypeOf(Duration{}):
		return
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			p := join(path, key.Value)
			ft, ok := fields[key.Value]
			if !ok {
				*errs = append(*errs, FieldError{Path: p, Line: key.Line, Msg: "unknown field" + suggest(key.Value, fields)})
				continue
			}
			lines[p] = key.Line
			checkFields(val, ft, p, lines, errs)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if t.Elem().Kind() == reflect.Struct && item.Kind == yaml.ScalarNode && item.Tag == "!!null" {
				// The decoder would drop it silently, shifting every index.
				*errs = append(*errs, FieldError{Path: p, Line: item.Line, Msg: "is an empty entry (a '-' with nothing after it): fill it in or remove it"})
				continue
			}
			checkFields(item, t.Elem(), p, lines, errs)
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkFields(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), lines, errs)
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields maps a struct's YAML keys to field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

// suggest proposes the known field closest to a misspelt one.
func suggest(key string, fields map[string]reflect.Type) string {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	if best := Closest(key, names); best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return fmt.Sprintf(" (known fields: %s)", strings.Join(names, ", "))
}

// Closest is the name a typo most likely meant: the nearest by edit
// distance (ignoring case), if within two edits; "" otherwise.
func Closest(word string, names []string) string {
	best, bestDist := "", 3
	for _, n := range names {
		if d := editDistance(strings.ToLower(word), strings.ToLower(n)); d < bestDist {
			best, bestDist = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// typeErrors turns yaml's "line N: cannot unmarshal ..." into field errors.
func typeErrors(err error, lines lineIndex) []FieldError {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		// A field's own decoder (a duration): "line N: why".
		msg, line := yamlMessage(err), 0
		if rest, ok := strings.CutPrefix(msg, "line "); ok {
			if n, tail, ok := strings.Cut(rest, ": "); ok {
				line, _ = strconv.Atoi(n)
				msg = tail
			}
		}
		path := lines.pathAt(line)
		if path == "" {
			path = "(file)"
		}
		return []FieldError{{Path: path, Line: line, Msg: msg}}
	}
	out := make([]FieldError, 0, len(te.Errors))
	for _, e := range te.Errors {
		line := 0
		if rest, ok := strings.CutPrefix(e, "line "); ok {
			if n, tail, ok := strings.Cut(rest, ": "); ok {
				line, _ = strconv.Atoi(n)
				e = tail
			}
		}
		out = append(out, FieldError{Path: lines.pathAt(line), Line: line, Msg: e})
	}
	return out
}

func yamlMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

const emptyFile = "the cluster file is empty (or holds only comments): 'kubeforge config example' prints a commented one"

// syntaxError words a YAML parse error with its line, and calls a tab in
// the indentation a tab (YAML's own words for it are cryptic).
func syntaxError(err error, data []byte) FieldError {
	msg := yamlMessage(err)
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, tail, ok := strings.Cut(rest, ": "); ok {
			line, _ = strconv.Atoi(n)
			msg = tail
		}
	}
	lines := strings.Split(string(data), "\n")
	// The parser may report the line after the tab: look at both.
	for _, l := range []int{line, line - 1} {
		if l >= 1 && l <= len(lines) {
			indent := lines[l-1][:len(lines[l-1])-len(strings.TrimLeft(lines[l-1], " \t"))]
			if strings.Contains(indent, "\t") {
				return FieldError{Path: "(syntax)", Line: l, Msg: "a tab in the indentation: YAML indents with spaces only"}
			}
		}
	}
	return FieldError{Path: "(syntax)", Line: line, Msg: msg}
}

// UnmarshalYAML reads "90s", "8760h" or "365d".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if err := d.UnmarshalText([]byte(n.Value)); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}

// durationShape is what time.ParseDuration reads; a string of this shape
// that it refuses is too long.
var durationShape = regexp.MustCompile(`^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))*$`)

// UnmarshalText reads "90s", "8760h" or "365d".
func (d *Duration) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	if days, ok := strings.CutSuffix(s, "d"); ok {
		v, err := strconv.ParseFloat(days, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("invalid duration %q: use e.g. 8760h or 365d", s)
		}
		if math.Abs(v*float64(24*time.Hour)) >= math.MaxInt64 {
			return fmt.Errorf("duration %q is too long: at most about 106751d (290 years)", s)
		}
		d.Duration = time.Duration(v * float64(24*time.Hour))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		if durationShape.MatchString(s) { // well formed: it overflowed
			return fmt.Errorf("duration %q is too long: at most about 2562047h (290 years)", s)
		}
		return fmt.Errorf("invalid duration %q: use e.g. 8760h or 365d", s)
	}
	d.Duration = v
	return nil
}

// MarshalYAML writes the duration as time.Duration prints it.
func (d Duration) MarshalYAML() (any, error) { return d.Duration.String(), nil }
