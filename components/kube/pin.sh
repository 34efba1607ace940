#!/usr/bin/env bash
# pin.sh MODFILE KUBERNETES ETCD: write the module file that builds the kube
# multicall binary for one Kubernetes release, and tidy it.
#
#   components/kube/pin.sh go.mod       v1.37.2 v3.7.4    # the default minor
#   components/kube/pin.sh k8s-1.36.mod v1.36.5 v3.6.17
#
# One source tree, one module file per supported minor (go build
# -modfile=k8s-1.36.mod): each build list is exactly what `go mod tidy` makes
# of that release's pins. k8s.io/kubernetes requires its staging modules at
# v0.0.0 with local replace lines, which do not apply to a consumer: every
# staging module is pinned here to the matching v0.x release, the list read
# from that release's own go.mod.
set -euo pipefail
cd "$(dirname "$0")"

modfile=$1 kube=$2 etcd=$3
case $modfile in *.mod) ;; *) echo "pin.sh: $modfile: a module file's name ends in .mod" >&2; exit 2 ;; esac
[[ $kube =~ ^v1\.[0-9]+\.[0-9]+$ ]] || { echo "pin.sh: $kube: want a Kubernetes release like v1.37.2" >&2; exit 2; }
[[ $etcd =~ ^v3\.[0-9]+\.[0-9]+$ ]] || { echo "pin.sh: $etcd: want an etcd release like v3.7.4" >&2; exit 2; }
staging=v0${kube#v1}

kmod=$(go mod download -json "k8s.io/kubernetes@$kube" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
[ -f "$kmod" ] || { echo "pin.sh: k8s.io/kubernetes@$kube: no go.mod from the module proxy" >&2; exit 1; }
godebug=$(sed -n 's/^godebug \(.*\)$/\1/p' "$kmod")

sum=${modfile%.mod}.sum
# go needs a go.mod to find the module's root, even when -modfile names another.
[ -f go.mod ] || { printf 'module github.com/kubeforge/kubeforge/components/kube\n\ngo 1.26.0\n' >go.mod; made=1; }
tmp=$(mktemp --suffix=.mod pin-XXXXXX)
trap 'rm -f "$tmp" "${tmp%.mod}.sum"; [ -z "${made:-}" ] || rm -f go.mod' EXIT
{
	echo "// Written by pin.sh $modfile $kube $etcd: the kube binary of Kubernetes $kube."
	echo "module github.com/kubeforge/kubeforge/components/kube"
	echo
	echo "go 1.26.0"
	[ -z "$godebug" ] || printf '\n// As Kubernetes %s is built.\ngodebug %s\n' "$kube" "$godebug"
	echo
	echo "require ("
	echo "	k8s.io/kubernetes $kube"
	for m in server etcdctl etcdutl pkg api client; do echo "	go.etcd.io/etcd/$m/v3 $etcd"; done
	echo ")"
	echo
	echo "replace ("
	sed -n 's|^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*$|\1|p' "$kmod" | sort -u |
		while read -r m; do echo "	$m => $m $staging"; done
	echo ")"
} >"$tmp"
[ ! -f "$sum" ] || cp "$sum" "${tmp%.mod}.sum"
go mod tidy -modfile="$tmp"
go mod tidy -modfile="$tmp" -diff >/dev/null
mv "${tmp%.mod}.sum" "$sum"
mv "$tmp" "$modfile"
made=
trap - EXIT
echo "pin.sh: $modfile: k8s.io/kubernetes $kube, etcd $etcd"
