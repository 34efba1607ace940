// Command kube-unpack unpacks a kubeforge bundle archive on a host that
// has no zstd program: kubeforge uploads it beside the archive (it cannot
// travel inside it) and runs
//
//	kube-unpack -C DIR < kubeforge-bundle-....tar.zst
//
// which decodes the archive (zstd, or gzip for bundles made before) and
// extracts it into DIR, refusing anything that would land outside DIR.
// Without -C it writes the decoded tar to stdout.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/kubeforge/kubeforge/components/bundle/untar"
)

func main() {
	dir := flag.String("C", "", "extract into this directory (created if missing); without it, write the decoded tar to stdout")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: kube-unpack [-C DIR] < ARCHIVE")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*dir, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kube-unpack:", err)
		os.Exit(1)
	}
}

func run(dir string, in io.Reader, out io.Writer) error {
	if dir != "" {
		return untar.Unpack(in, dir)
	}
	zr, done, err := untar.Decompress(in)
	if err != nil {
		return err
	}
	defer done()
	_, err = io.Copy(out, zr)
	return err
}
