// Command kube-unpack unpacks a kubeforge bundle archive on a host that
// has no zstd program: kubeforge uploads it beside where the bundle goes
// (it cannot travel inside the archive) and streams the archive to it:
//
//	kube-unpack -C DIR -sha256 SUM -check SUMS < kubeforge-bundle-....tar.zst
//
// which decodes the archive (zstd, or gzip for bundles made before) and
// extracts it into DIR, refusing anything that would land outside DIR;
// with -sha256 and -check it verifies the stream and every file of SUMS
// (sha256sum's format) as it writes them, so nothing is read twice.
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
	archive := flag.String("sha256", "", "the archive's sha256 (hex): refuse a stream with another")
	check := flag.String("check", "", "a file of sums (sha256sum's format): each file must be in the archive with its sum")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: kube-unpack [-C DIR [-sha256 SUM] [-check SUMS]] < ARCHIVE")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 0 || (*dir == "" && (*archive != "" || *check != "")) {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*dir, *archive, *check, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kube-unpack:", err)
		os.Exit(1)
	}
}

func run(dir, archive, check string, in io.Reader, out io.Writer) error {
	if dir != "" {
		return untar.UnpackWithSumsFile(in, dir, archive, check)
	}
	zr, done, err := untar.Decompress(in)
	if err != nil {
		return err
	}
	defer done()
	_, err = io.Copy(out, zr)
	return err
}
