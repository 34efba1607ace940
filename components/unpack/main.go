// Command kube-unpack unpacks a kubeforge bundle archive on a host that
// has no zstd program: kubeforge uploads it beside where the bundle goes
// (it cannot travel inside the archive) and streams the archive to it:
//
//	kube-unpack -C DIR -sha256 SUM -check SUMS [-keep PATH] < kubeforge-bundle-....tar.zst
//
// which decodes the archive (zstd, or gzip for bundles made before) and
// extracts it into DIR, refusing anything that would land outside DIR;
// with -sha256 and -check it verifies the stream and every file of SUMS
// (sha256sum's format) as it writes them, so nothing is read twice.
// -keep also writes the archive to PATH once its sum matched (a control
// plane keeps it for the nodes that join later). Without -C it writes
// the decoded tar to stdout.
//
// A control plane that kept the archive serves it to one joining host,
// and that host unpacks it from there, both given the same one-time
// token on stdin by kubeforge over SSH:
//
//	kube-unpack -serve PATH -listen IP [-clients N] [-for DURATION] < TOKEN
//	kube-unpack -C DIR -sha256 SUM -check SUMS -from IP:PORT < TOKEN
//
// -serve prints "PORT PID" and returns; the server it leaves behind
// stops after N transfers or DURATION, whichever comes first.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/kubeforge/kubeforge/components/bundle/peer"
	"github.com/kubeforge/kubeforge/components/bundle/untar"
)

// fetchTimeout bounds the connect to a -from server: past it, kubeforge
// streams the archive itself.
const fetchTimeout = 5 * time.Second

type options struct {
	dir, archive, check, keep, from string
	serve, listen                   string
	clients                         int
	lifetime                        time.Duration
	listenFD                        int
}

func main() {
	var o options
	flag.StringVar(&o.dir, "C", "", "extract into this directory (created if missing); without it, write the decoded tar to stdout")
	flag.StringVar(&o.archive, "sha256", "", "the archive's sha256 (hex): refuse a stream with another")
	flag.StringVar(&o.check, "check", "", "a file of sums (sha256sum's format): each file must be in the archive with its sum")
	flag.StringVar(&o.keep, "keep", "", "also write the archive to this path, once its sum matched (needs -sha256)")
	flag.StringVar(&o.from, "from", "", "read the archive from the kube-unpack -serve at this IP:PORT (the token on stdin), not from stdin")
	flag.StringVar(&o.serve, "serve", "", "serve this archive to one host with the token read from stdin; print the port and the server's pid")
	flag.StringVar(&o.listen, "listen", "", "with -serve: the IP address to listen on")
	flag.IntVar(&o.clients, "clients", 1, "with -serve: stop after this many transfers")
	flag.DurationVar(&o.lifetime, "for", 10*time.Minute, "with -serve: stop after this long, transfers or not")
	flag.IntVar(&o.listenFD, "listen-fd", 0, "internal: the server, on this inherited listener")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: kube-unpack [-C DIR [-sha256 SUM] [-check SUMS] [-keep PATH] [-from IP:PORT]] < ARCHIVE\n       kube-unpack -serve PATH -listen IP [-clients N] [-for DURATION] < TOKEN")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 0 || o.usageError() != "" {
		if flag.NArg() == 0 {
			fmt.Fprintln(os.Stderr, "kube-unpack:", o.usageError())
		}
		flag.Usage()
		os.Exit(2)
	}
	if err := run(o, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kube-unpack:", err)
		os.Exit(1)
	}
}

// usageError says what is wrong with the flags' combination, or "".
func (o options) usageError() string {
	switch {
	case o.serve != "" && (o.dir != "" || o.from != "" || o.keep != ""):
		return "-serve goes alone: it unpacks nothing"
	case o.serve != "" && o.listenFD == 0:
		if _, err := netip.ParseAddr(o.listen); err != nil {
			return "-serve needs -listen IP: " + err.Error()
		}
	case o.serve == "" && o.listenFD != 0:
		return "-listen-fd is the server's own"
	case o.dir == "" && (o.archive != "" || o.check != "" || o.keep != "" || o.from != ""):
		return "-sha256, -check, -keep and -from need -C DIR"
	case o.keep != "" && o.archive == "":
		return "-keep needs -sha256: only a checked archive is kept"
	}
	if o.from != "" {
		if _, err := netip.ParseAddrPort(o.from); err != nil {
			return "-from needs IP:PORT: " + err.Error()
		}
	}
	return ""
}

func run(o options, in io.Reader, out io.Writer) error {
	switch {
	case o.listenFD != 0:
		return serveOn(o, in)
	case o.serve != "":
		return startServer(o, in, out)
	case o.dir == "":
		zr, done, err := untar.Decompress(in)
		if err != nil {
			return err
		}
		defer done()
		_, err = io.Copy(out, zr)
		return err
	}
	if o.from != "" {
		tok, err := peer.ReadToken(in)
		if err != nil {
			return err
		}
		r, err := peer.Fetch(context.Background(), o.from, tok, fetchTimeout)
		if err != nil {
			return err
		}
		defer r.Close()
		in = r
	}
	return untar.UnpackAndKeep(in, o.dir, o.archive, o.check, o.keep)
}

// startServer listens, and leaves the server to a process of its own in
// a session of its own (the SSH session that started it ends now), with
// the listener and the token; it prints the port and that process's pid.
func startServer(o options, in io.Reader, out io.Writer) error {
	tok, err := peer.ReadToken(in)
	if err != nil {
		return err
	}
	if _, err := os.Stat(o.serve); err != nil {
		return err // before anything listens: the caller streams the archive itself
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(o.listen, "0"))
	if err != nil {
		return err
	}
	defer ln.Close()
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		return err
	}
	defer lf.Close()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	tr, tw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer tr.Close()
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer null.Close()
	proc, err := os.StartProcess(exe, []string{exe, "-serve", o.serve, "-listen-fd", "3",
		"-clients", strconv.Itoa(o.clients), "-for", o.lifetime.String()}, &os.ProcAttr{
		Files: []*os.File{tr, null, null, lf},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		tw.Close()
		return fmt.Errorf("start the server: %w", err)
	}
	_, err = io.WriteString(tw, tok+"\n")
	tw.Close()
	if err != nil {
		proc.Kill()
		return fmt.Errorf("give the server its token: %w", err)
	}
	_, err = fmt.Fprintf(out, "%d %d\n", ln.Addr().(*net.TCPAddr).Port, proc.Pid)
	proc.Release()
	return err
}

// serveOn is the server started by startServer.
func serveOn(o options, in io.Reader) error {
	tok, err := peer.ReadToken(in)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(o.listenFD), "listener")
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return err
	}
	s := &peer.Server{Archive: o.serve, Token: tok, Clients: o.clients, Lifetime: o.lifetime}
	if err := s.Serve(ln); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	return nil
}
