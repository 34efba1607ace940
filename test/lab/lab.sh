#!/usr/bin/env bash
# shellcheck disable=SC2015 # "a && b || c" is meant throughout: c also runs when b fails
# lab.sh: kubeforge's lab, real test hosts on this machine.
#
# Every host is a privileged Docker container with systemd as PID 1, sshd, its
# own root filesystem and its own address on a bridge network, the same idea
# as kind's node image. make drives it (test/lab/lab.mk):
#
#   lab.sh up [N] [CP]     N hosts (default 1), the first CP of them control planes
#   lab.sh down            remove the hosts, and put the machine back as it was
#   lab.sh clean           down, and also drop the cached images and rootfs
#   lab.sh status          what is running, the guard rules' counters, changed sysctls
#   lab.sh start|stop|recreate|wait NAME
#                          one host (the Go helpers in test/lab call these)
#   lab.sh ssh NAME [CMD]  ssh to a host as root with the lab key
#   lab.sh render-hosts N CP [IMAGE], lab.sh render-cluster HOSTS_JSON
#                          print hosts.json / the cluster file, touching nothing (tests)
#
# Environment: LAB_SUBNET (first three octets, default 172.30.0), LAB_MIRROR
# (the Debian mirror for debootstrap; default: the one apt uses).
#
# What it changes on the machine, and puts back at `down`:
#   - starts dockerd (only when none is running) with the runc-vm wrapper as
#     its default runtime and records its pid under .lab/state/;
#   - before that, snapshots iptables-save, ip6tables-save, `sysctl -a` and the
#     network links; `down` restores the iptables snapshot when it started
#     dockerd, restores every writable sysctl that differs (the kubelet in a
#     privileged host changes the machine's kernel.panic and others) and
#     checks that nothing of the lab is left;
#   - adds rules tagged "kubeforge-lab" to Docker's DOCKER-USER chain so the
#     lab's traffic cannot leave for private networks (see add_guard).
set -euo pipefail
export LC_ALL=C

LAB_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$LAB_SRC/../.." && pwd)
LAB=$REPO/.lab
STATE=$LAB/state
CACHE=$LAB/cache
KEY=$LAB/id_ed25519
HOSTS_JSON=$LAB/hosts.json
CLUSTER=$LAB/cluster.yaml

NET=kubeforge-lab              # the Docker network
BRIDGE=kubeforge-lab           # its Linux bridge (named, so iptables can match it)
TAG=kubeforge-lab              # the comment on every iptables rule we add
LABEL=io.kubeforge.lab         # the label on every Docker object we make
CTR_PREFIX=kubeforge-          # container kubeforge-lab1 is host lab1
SUITE=bookworm
BASE_IMAGE=kubeforge-lab-base:$SUITE
IMAGE_REPO=kubeforge-lab
PRIVATE_RANGES=(10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 100.64.0.0/10 169.254.0.0/16)
MAX_HOSTS=80                   # hosts are .11 .. .90; .100 is the VIP
WAIT_SECONDS=${LAB_WAIT_SECONDS:-90}

SSH_OPTS=(-i "$KEY" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
	-o LogLevel=ERROR -o BatchMode=yes -o ConnectTimeout=2 -o IdentitiesOnly=yes)

# ---------------------------------------------------------------- messages

T_START=${EPOCHREALTIME/./}
now_us() { echo "${EPOCHREALTIME/./}"; }
secs() { # start_us -> seconds since, one decimal
	local d=$(($(now_us) - $1))
	printf '%d.%d' $((d / 1000000)) $((d % 1000000 / 100000))
}
say() { printf '==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
warn() { printf 'lab: warning: %s\n' "$*" >&2; }
die() {
	printf 'lab: error: %s\n' "$*" >&2
	exit 1
}
STEP_T=
step() { # start a timed step
	STEP_T=$(now_us)
	say "$*"
}
done_step() { info "done in $(secs "$STEP_T")s${1:+: $1}"; }

lock() {
	mkdir -p "$LAB"
	exec 9>"$LAB/lock"
	if ! flock -n 9; then
		info "waiting for another lab.sh to finish ($LAB/lock)"
		flock -w 600 9 || die "$LAB/lock is still held after 10 minutes"
	fi
}

docker_ok() { docker info >/dev/null 2>&1; }
need_docker() { docker_ok || die "docker does not answer: is the lab up? (make lab-up)"; }

# ---------------------------------------------------------------- settings

subnet_prefix() {
	local p=${LAB_SUBNET:-172.30.0}
	p=${p%.0/24}
	[[ $p =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] ||
		die "LAB_SUBNET=$p: give the first three octets of a /24, e.g. 172.30.0"
	local o out=()
	for o in "${BASH_REMATCH[@]:1}"; do
		((10#$o <= 255)) || die "LAB_SUBNET=$p: $o is not an octet"
		out+=($((10#$o)))
	done
	(IFS=.; echo "${out[*]}")
}

host_ip() { echo "$1.$((10 + $2))"; } # prefix index

check_counts() { # n cp
	[[ $1 =~ ^[0-9]+$ ]] && (($1 >= 1 && $1 <= MAX_HOSTS)) || die "N=$1: give 1..$MAX_HOSTS hosts"
	[[ $2 =~ ^[0-9]+$ ]] && (($2 >= 1 && $2 <= $1)) || die "CP=$2: give 1..N control planes (N=$1)"
}

# ---------------------------------------------------------------- packages

ensure_packages() {
	local need=() made_policy=
	command -v dockerd >/dev/null || need+=(docker.io)
	command -v docker >/dev/null || need+=(docker.io)
	command -v debootstrap >/dev/null || need+=(debootstrap)
	command -v iptables-save >/dev/null || need+=(iptables)
	command -v jq >/dev/null || need+=(jq)
	command -v ssh >/dev/null || need+=(openssh-client)
	command -v flock >/dev/null || need+=(util-linux)
	command -v setsid >/dev/null || need+=(util-linux)
	command -v ip >/dev/null || need+=(iproute2)
	command -v sysctl >/dev/null || need+=(procps)
	# iptables-nft leaves a table behind once anything used it; `down` deletes
	# the ones that did not exist before with nft.
	command -v nft >/dev/null || need+=(nftables)
	[ ${#need[@]} -eq 0 ] && return 0
	mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
	step "installing ${need[*]} (apt)"
	# Installing must not start any service (docker.io would start a dockerd
	# of its own where an init system can): deny it unless the machine
	# already has a policy.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		made_policy=1
	fi
	local rc=0
	{
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" ||
			{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"; }
	} >"$LAB/apt.log" 2>&1 || rc=$?
	[ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
	if [ $rc -ne 0 ]; then
		tail -20 "$LAB/apt.log" >&2
		die "apt-get install ${need[*]} failed (log: $LAB/apt.log)"
	fi
	done_step
}

# ---------------------------------------------------------------- snapshot

# The state the machine was in before the lab, taken once: by the first `up`
# after a `down` (a second `up` keeps the first snapshot).
take_snapshot() {
	mkdir -p "$STATE"
	[ -f "$STATE/snapshot.done" ] && return 0
	step "snapshot of iptables, sysctls and links (restored by lab-down)"
	# Rules tagged $TAG are the lab's by definition: ones left by an earlier
	# lab that was killed go now, and are never part of "before the lab"
	# (else lab-down would restore them and then find them left behind).
	remove_tagged iptables
	remove_tagged ip6tables
	iptables-save | untagged >"$STATE/iptables.snapshot"
	{ ip6tables-save 2>/dev/null || true; } | untagged >"$STATE/ip6tables.snapshot"
	sysctl -a 2>/dev/null >"$STATE/sysctl.snapshot" || true
	[ -s "$STATE/sysctl.snapshot" ] || die "sysctl -a printed nothing"
	links >"$STATE/links.snapshot"
	mounts >"$STATE/mounts.snapshot"
	local p
	for p in "${RUNTIME_PATHS[@]}"; do [ -e "$p" ] && echo "$p"; done >"$STATE/paths.snapshot" || true
	if docker_ok || pgrep -x dockerd >/dev/null; then
		echo external >"$STATE/dockerd.before"
	else
		echo none >"$STATE/dockerd.before"
	fi
	touch "$STATE/snapshot.done"
	done_step "$(wc -l <"$STATE/sysctl.snapshot") sysctls, $(grep -c '^-A' "$STATE/iptables.snapshot" || true) iptables rules"
}

# Every lab host's kubelet, containerd and systemd take inotify instances
# from the machine's one kernel: with 128 (Debian's default), the seventh
# node's kubelet fails with "inotify_init: too many open files" (kind has
# the same advice). Raised here after the snapshot, so lab-down puts the
# old values back with the other sysctls.
INOTIFY_INSTANCES=1024
INOTIFY_WATCHES=1048576
raise_inotify_limits() {
	local key want
	for key in fs.inotify.max_user_instances:$INOTIFY_INSTANCES fs.inotify.max_user_watches:$INOTIFY_WATCHES; do
		want=${key#*:}
		key=${key%%:*}
		if (($(sysctl -n "$key") < want)); then
			sysctl -qw "$key=$want" || warn "could not raise $key to $want: big labs may fail"
		fi
	done
}

mounts() { awk '{print $2}' /proc/self/mounts | sort -u; }
# What a dockerd leaves behind after it exits (under /run, which is not a tmpfs here).
RUNTIME_PATHS=(/run/docker /run/containerd /run/docker.sock /run/docker.pid)
RUNTIME_MOUNTS='^/(run|var/run)/(docker|containerd)(/|$)|^/var/lib/(docker|containerd)(/|$)'

links() { ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | sort; }

# ---------------------------------------------------------------- dockerd

# The pid of the dockerd this lab started, if it still runs.
our_dockerd() {
	local pid
	[ -f "$STATE/dockerd.pid" ] || return 1
	pid=$(cat "$STATE/dockerd.pid" 2>/dev/null) || return 1
	[ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] || return 1
	echo "$pid"
}

ensure_dockerd() {
	local pid
	if pid=$(our_dockerd) && docker_ok; then
		info "dockerd: the one lab-up started (pid $pid)"
		return 0
	fi
	if docker_ok; then
		info "dockerd: already running, not started by the lab (lab-down leaves it running)"
		if [ "$(docker info -f '{{.DefaultRuntime}}')" != runc-vm ] &&
			! grep -q "runc-vm" <<<"$(docker info -f '{{json .Runtimes}}')"; then
			warn "that dockerd has no runc-vm runtime: --privileged hosts fail where the kernel lacks CAP_SYS_RESOURCE"
		fi
		return 0
	fi
	pgrep -x dockerd >/dev/null && die "a dockerd is running (pid $(pgrep -x dockerd | tr '\n' ' ')) but does not answer; stop it or fix it"
	step "starting dockerd (runtime runc-vm, log $STATE/dockerd.log)"
	install -m 755 "$LAB_SRC/runc-vm" "$STATE/runc-vm"
	rm -f "$STATE/dockerd.pid"
	# --bridge=none: no docker0, nothing Docker makes that we do not use.
	setsid -f dockerd --add-runtime "runc-vm=$STATE/runc-vm" --default-runtime runc-vm \
		--bridge=none --pidfile "$STATE/dockerd.pid" >"$STATE/dockerd.log" 2>&1 </dev/null 9>&-
	echo started >"$STATE/dockerd.started"
	local i
	for ((i = 0; i < 300; i++)); do
		docker_ok && break
		if ((i > 10)) && ! pgrep -x dockerd >/dev/null; then
			tail -20 "$STATE/dockerd.log" >&2
			die "dockerd exited (log: $STATE/dockerd.log)"
		fi
		sleep 0.1
	done
	docker_ok || die "dockerd did not answer within 30s (log: $STATE/dockerd.log)"
	pid=$(our_dockerd) || die "dockerd answers but $STATE/dockerd.pid names no dockerd"
	done_step "pid $pid, $(docker version -f '{{.Server.Version}}')"
}

stop_our_dockerd() {
	local pid i
	pid=$(our_dockerd) || {
		rm -f "$STATE/dockerd.pid"
		return 0
	}
	step "stopping the dockerd lab-up started (pid $pid)"
	kill -TERM "$pid"
	for ((i = 0; i < 300; i++)); do
		[ -d "/proc/$pid" ] || break
		sleep 0.1
	done
	if [ -d "/proc/$pid" ]; then
		warn "dockerd $pid did not stop in 30s: killing it"
		kill -KILL "$pid" 2>/dev/null || true
		sleep 1
	fi
	rm -f "$STATE/dockerd.pid"
	done_step
}

# ---------------------------------------------------------------- images

# The Debian mirror apt uses here, for debootstrap: the first http(s) URI
# whose suite is $SUITE, from one-line (.list) or deb822 (.sources) files.
find_mirror() {
	if [ -n "${LAB_MIRROR:-}" ]; then
		echo "$LAB_MIRROR"
		return
	fi
	local f files=()
	[ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
	for f in /etc/apt/sources.list.d/*.list; do [ -f "$f" ] && files+=("$f"); done
	local one_line=("${files[@]}") deb822=()
	for f in /etc/apt/sources.list.d/*.sources; do [ -f "$f" ] && deb822+=("$f"); done
	{
		if [ ${#one_line[@]} -gt 0 ]; then
			awk -v want="$SUITE" '
				$1 == "deb" {
					i = 2
					if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
					if ($(i+1) == want && $i ~ /^https?:\/\//) print $i
				}' "${one_line[@]}"
		fi
		if [ ${#deb822[@]} -gt 0 ]; then
			awk -v want="$SUITE" '
				function flush(   n, s, u, j, ok) {
					if (types ~ /(^| )deb( |$)/ && enabled != "no") {
						n = split(suites, s, " "); ok = 0
						for (j = 1; j <= n; j++) if (s[j] == want) ok = 1
						split(uris, u, " ")
						if (ok && u[1] ~ /^https?:\/\//) print u[1]
					}
					types = uris = suites = enabled = ""
				}
				FNR == 1 { flush() }
				/^[ \t]*#/ { next }
				/^[ \t]*$/ { flush(); next }
				{ k = tolower($1); $1 = "" }
				k == "types:" { types = $0 }
				k == "uris:" { uris = $0 }
				k == "suites:" { suites = $0 }
				k == "enabled:" { enabled = tolower($2) }
				END { flush() }' "${deb822[@]}"
		fi
	} | head -1
}

ensure_base_image() {
	docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && return 0
	local rootfs=$CACHE/rootfs-$SUITE mirror
	mkdir -p "$CACHE"
	if [ ! -f "$rootfs.done" ]; then
		mirror=$(find_mirror)
		[ -n "$mirror" ] || die "no http(s) mirror for $SUITE in /etc/apt/sources.list*; set LAB_MIRROR"
		step "debootstrap --variant=minbase $SUITE from $mirror (log $CACHE/debootstrap.log)"
		rm -rf "$rootfs"
		if ! debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" >"$CACHE/debootstrap.log" 2>&1; then
			tail -20 "$CACHE/debootstrap.log" >&2
			die "debootstrap failed (log: $CACHE/debootstrap.log)"
		fi
		touch "$rootfs.done"
		done_step
	fi
	step "docker import $rootfs as $BASE_IMAGE"
	tar -C "$rootfs" --numeric-owner -c . |
		docker import -c "LABEL $LABEL=base" -m "debootstrap --variant=minbase $SUITE" - "$BASE_IMAGE" >/dev/null
	done_step
}

# The host image's tag: a hash of test/lab/image and of the base image, so
# changing any file there builds a new image and hosts move to it.
image_tag() {
	local base
	base=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")
	{
		echo "$base"
		(cd "$LAB_SRC/image" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
	} | sha256sum | cut -c1-12
}

ensure_host_image() { # -> sets IMAGE
	ensure_base_image
	IMAGE=$IMAGE_REPO:$(image_tag)
	if docker image inspect "$IMAGE" >/dev/null 2>&1; then
		info "image $IMAGE (cached)"
		return 0
	fi
	step "docker build $IMAGE from test/lab/image (log $CACHE/build.log)"
	mkdir -p "$CACHE"
	if ! DOCKER_BUILDKIT=0 docker build --network host --build-arg "BASE=$BASE_IMAGE" \
		--label "$LABEL=host-image" -t "$IMAGE" "$LAB_SRC/image" >"$CACHE/build.log" 2>&1; then
		tail -30 "$CACHE/build.log" >&2
		die "docker build failed (log: $CACHE/build.log)"
	fi
	done_step
}

# Host images of earlier versions of test/lab/image that no container uses.
prune_old_images() {
	local img
	for img in $(docker images --filter "label=$LABEL=host-image" --format '{{.Repository}}:{{.Tag}}'); do
		[ "$img" = "$IMAGE" ] && continue
		[ "$img" = "<none>:<none>" ] && continue
		docker rmi "$img" >/dev/null 2>&1 && info "removed old image $img" || true
	done
}

# ---------------------------------------------------------------- network + guard

default_mtu() {
	local dev
	dev=$(ip -o route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") {print $(i+1); exit}}')
	cat "/sys/class/net/${dev:-lo}/mtu" 2>/dev/null || echo 1500
}

ensure_network() { # prefix
	local subnet=$1.0/24 cur mtu
	if docker network inspect "$NET" >/dev/null 2>&1; then
		cur=$(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' "$NET")
		[ "$cur" = "$subnet" ] && return 0
		say "network $NET has subnet $cur, want $subnet: re-creating it and its hosts"
		remove_hosts_over 0
		docker network rm "$NET" >/dev/null
	fi
	# The machine's MTU (1400 here): a 1500-byte bridge would black-hole big
	# packets on their way to the mirror.
	mtu=$(default_mtu)
	docker network create --driver bridge --subnet "$subnet" --gateway "$1.1" \
		--label "$LABEL=network" -o "com.docker.network.bridge.name=$BRIDGE" \
		-o "com.docker.network.driver.mtu=$mtu" "$NET" >/dev/null
	info "network $NET: $subnet, gateway $1.1, bridge $BRIDGE, mtu $mtu"
}

# Keep the lab's traffic to itself. Pod and service addresses (10.244.x,
# 10.96.x) live inside the hosts; a packet to one that escapes (kube-proxy not
# ready yet, a wrong route) would leave through this machine's default route.
# In DOCKER-USER (the first thing Docker's FORWARD chain does), every packet
# that comes in from the lab bridge:
#   - and goes back out on it (host to host, pod to pod across hosts): allowed;
#   - to this machine's DNS servers, port 53: allowed (Docker's embedded DNS
#     forwards the hosts' queries from inside their network namespace);
#   - to a private or link-local range: dropped;
#   - anything else (public addresses: the apt mirror): Docker's rules.
# Matching the bridge, not the lab subnet as source, also catches pod-sourced
# packets that were not masqueraded.
add_guard() {
	iptables -w -n -L DOCKER-USER >/dev/null 2>&1 || die "Docker's DOCKER-USER chain is missing (was dockerd started with --iptables=false?)"
	local rules=() ns r c=(-m comment --comment "$TAG") spec
	rules+=("-i $BRIDGE -o $BRIDGE -j RETURN")
	if airgap; then
		# Air-gapped: nothing leaves the lab's subnet, DNS and mirrors included.
		rules+=("-i $BRIDGE -j DROP")
	else
		for ns in $(awk '$1 == "nameserver" && $2 ~ /^[0-9.]+$/ {print $2}' /etc/resolv.conf); do
			rules+=("-i $BRIDGE -d $ns/32 -p udp --dport 53 -j RETURN" "-i $BRIDGE -d $ns/32 -p tcp --dport 53 -j RETURN")
		done
		for r in "${PRIVATE_RANGES[@]}"; do rules+=("-i $BRIDGE -d $r -j DROP"); done
	fi
	# Already there, first in the chain (a second lab-up)? Keep them and their counters.
	spec=$(printf '%s\n' "${rules[@]}")
	if [ -f "$STATE/guard.spec" ] && [ "$(cat "$STATE/guard.spec")" = "$spec" ] &&
		[ "$(iptables -w -S DOCKER-USER | sed -n "2,$((${#rules[@]} + 1))p" | grep -c -- "--comment $TAG")" = "${#rules[@]}" ] &&
		[ "$(tagged_rules | wc -l)" = "${#rules[@]}" ]; then
		info "guard: ${#rules[@]} rules in DOCKER-USER already in place"
		return 0
	fi
	remove_tagged iptables
	local n=1 args
	for r in "${rules[@]}"; do
		read -ra args <<<"$r"
		iptables -w -I DOCKER-USER $((n++)) "${args[@]:0:${#args[@]}-2}" "${c[@]}" "${args[@]: -2}"
	done
	if airgap; then
		# This machine itself is outside too: the hosts answer its SSH
		# connections, and start none of their own to it.
		iptables -w -I INPUT 1 -i "$BRIDGE" "${c[@]}" -j DROP
		iptables -w -I INPUT 1 -i "$BRIDGE" -m conntrack --ctstate ESTABLISHED,RELATED "${c[@]}" -j ACCEPT
	fi
	printf '%s\n' "$spec" >"$STATE/guard.spec"
	if airgap; then
		info "guard: air-gapped (LAB_AIRGAP=1): the lab's hosts reach nothing outside $BRIDGE, this machine included"
	else
		info "guard: ${#rules[@]} rules in DOCKER-USER (comment $TAG): lab -> ${PRIVATE_RANGES[*]} dropped"
	fi
}

# LAB_AIRGAP=1 (make lab-up AIRGAP=1): no mirror, no DNS, nothing but the lab.
airgap() { [ "${LAB_AIRGAP:-0}" = 1 ]; }

# Delete every rule whose comment is $TAG, in every table of one family.
remove_tagged() { # iptables|ip6tables
	local cmd=$1 table="" line args count=0 lines=()
	command -v "$cmd-save" >/dev/null || return 0
	mapfile -t lines < <("$cmd-save" 2>/dev/null)
	for line in "${lines[@]}"; do
		case $line in
		\**) table=${line#\*} ;;
		"-A "*)
			[[ $line =~ --comment\ \"?$TAG\"?(\ |$) ]] || continue
			read -ra args <<<"${line#-A }"
			"$cmd" -w -t "$table" -D "${args[@]}"
			count=$((count + 1))
			;;
		esac
	done
	((count == 0)) || info "removed $count $cmd rules tagged $TAG"
}

untagged() { grep -Ev -- "--comment \"?$TAG\"?( |$)" || true; }

tagged_rules() { # prints what is left
	{ iptables-save 2>/dev/null; ip6tables-save 2>/dev/null; } | grep -E -- "--comment \"?$TAG\"?( |$)" || true
}

# ---------------------------------------------------------------- hosts

container() { echo "$CTR_PREFIX$1"; }

lab_containers() { # every container of the lab, also stopped ones
	docker ps -a --filter "label=$LABEL=host" --format '{{.Names}}' 2>/dev/null | sort -V
}

ensure_key() {
	[ -f "$KEY" ] && [ -f "$KEY.pub" ] && return 0
	rm -f "$KEY" "$KEY.pub"
	ssh-keygen -q -t ed25519 -N '' -C "kubeforge-lab" -f "$KEY"
	info "new lab key $KEY"
}

# The one way a host is made: lab-up and the Go helpers' Recreate use it.
run_host() { # name ip image
	local name=$1 ip=$2 image=$3 extra=()
	# A kernel with loadable modules: give the hosts its modules, read-only.
	[ -d /lib/modules ] && [ -e /proc/modules ] && extra+=(-v /lib/modules:/lib/modules:ro)
	docker run -d --name "$(container "$name")" --hostname "$name" \
		--label "$LABEL=host" --label "$LABEL.name=$name" \
		--privileged --cgroupns=private --security-opt seccomp=unconfined \
		--tmpfs /run --tmpfs /run/lock --tmpfs /tmp -v /var "${extra[@]}" \
		--network "$NET" --ip "$ip" --network-alias "$name" \
		"$image" >/dev/null
	install_key "$name"
}

# root and kf log in with the lab key. The key goes in at run time, so the
# image does not depend on it; it stays across stop/start.
install_key() { # name
	docker exec -i "$(container "$1")" sh -euc '
		umask 077
		cat >/root/.ssh/authorized_keys
		install -m 600 -o kf -g kf /root/.ssh/authorized_keys /home/kf/.ssh/authorized_keys' <"$KEY.pub"
}

# Wait for systemd to finish booting and sshd to let root in with the key.
wait_host() { # name ip start_us [quiet]
	local name=$1 ip=$2 start=$3 s="" deadline
	deadline=$(($(now_us) + WAIT_SECONDS * 1000000))
	while :; do
		s=$(ssh "${SSH_OPTS[@]}" "root@$ip" systemctl is-system-running 2>/dev/null) || true
		case $s in running | degraded) break ;; esac
		if (($(now_us) > deadline)); then
			printf '    %-6s %-15s NOT READY after %ss (state "%s")\n' "$name" "$ip" "$WAIT_SECONDS" "${s:-no ssh}"
			docker exec "$(container "$name")" systemctl --failed --no-pager --plain --no-legend 2>&1 | sed 's/^/      failed: /' || true
			docker logs --tail 20 "$(container "$name")" 2>&1 | sed 's/^/      log: /' || true
			return 1
		fi
		sleep 0.2
	done
	local failed=
	if [ "$s" = degraded ]; then
		failed=$(ssh "${SSH_OPTS[@]}" "root@$ip" systemctl --failed --plain --no-legend 2>/dev/null | awk '{printf " %s", $1}') || true
		failed=" (failed:${failed:- ?})"
	fi
	printf '    %-6s %-15s %-9s %5ss%s\n' "$name" "$ip" "$s" "$(secs "$start")" "$failed"
}

# Wait for several hosts at once; each line says how long its host took.
wait_hosts() { # "name ip start_us" ...
	local spec pids=() rc=0 tmp i=0
	tmp=$(mktemp -d)
	for spec in "$@"; do
		# shellcheck disable=SC2086
		wait_host $spec >"$tmp/$i" 2>&1 &
		pids+=($!)
		i=$((i + 1))
	done
	for ((i = 0; i < ${#pids[@]}; i++)); do
		wait "${pids[$i]}" || rc=1
		cat "$tmp/$i"
	done
	rm -rf "$tmp"
	return $rc
}

remove_hosts_over() { # n: remove every lab container whose index is above n
	local c name idx
	for c in $(lab_containers); do
		name=${c#"$CTR_PREFIX"}
		idx=${name#lab}
		if [[ $idx =~ ^[0-9]+$ ]] && ((idx <= $1)); then continue; fi
		docker rm -f -v "$c" >/dev/null
		info "removed $name ($c)"
	done
}

# ---------------------------------------------------------------- files for tests

# hosts.json: what Go helpers and tests read (package lab, Load).
hosts_json() { # prefix n cp image
	local prefix=$1 n=$2 cp=$3 image=$4 i roles vip=
	((cp > 1)) && vip=$prefix.100
	for ((i = 1; i <= n; i++)); do
		if ((n == 1)); then
			roles='["control-plane","worker"]'
		elif ((i <= cp)); then
			roles='["control-plane"]'
		else
			roles='["worker"]'
		fi
		jq -cn --arg name "lab$i" --arg c "$(container "lab$i")" --arg ip "$(host_ip "$prefix" "$i")" \
			--argjson roles "$roles" '{name: $name, container: $c, ip: $ip, roles: $roles}'
	done | jq -s \
		--arg network "$NET" --arg bridge "$BRIDGE" --arg subnet "$prefix.0/24" --arg gw "$prefix.1" \
		--arg image "$image" --arg vip "$vip" --arg key "$KEY" --arg cluster "$CLUSTER" \
		--argjson cp "$cp" --argjson airgap "$(airgap && echo true || echo false)" '{
			network: $network, bridge: $bridge, subnet: $subnet, gateway: $gw, image: $image,
			controlPlanes: $cp, vip: $vip, airgap: $airgap, sshUser: "root", keyFile: $key, clusterFile: $cluster,
			hosts: .
		}'
}

write_files() { # prefix n cp image
	hosts_json "$@" >"$HOSTS_JSON.tmp"
	mv "$HOSTS_JSON.tmp" "$HOSTS_JSON"
	render_cluster "$HOSTS_JSON" >"$CLUSTER.tmp"
	mv "$CLUSTER.tmp" "$CLUSTER"
}

render_cluster() { # hosts.json
	[ -f "$1" ] || die "no such file: $1"
	jq -r '
		"# The lab'"'"'s cluster file, written by test/lab/lab.sh (make lab-up).",
		"apiVersion: kubeforge.io/v1alpha1",
		"kind: Cluster",
		"metadata:",
		"  name: lab",
		"spec:",
		"  ssh:",
		"    user: \(.sshUser)",
		"    keyPath: \(.keyFile)",
		"  hosts:",
		(.hosts[] |
			"    - name: \(.name)",
			"      address: \(.ip)",
			"      roles: [\(.roles | join(", "))]"),
		(if (.vip // "") != "" then "  controlPlane:", "    vip: \(.vip)" else empty end)
	' "$1"
}

# ---------------------------------------------------------------- commands

cmd_up() {
	local n=${1:-1} cp=${2:-1} prefix i name ip c specs=() made=0 kept=0
	check_counts "$n" "$cp"
	prefix=$(subnet_prefix)
	[ "$(id -u)" = 0 ] || die "run as root (it starts dockerd and changes iptables)"
	say "lab-up: $n host(s), $cp control plane(s), subnet $prefix.0/24"
	lock
	mkdir -p "$STATE" "$CACHE"
	ensure_packages
	take_snapshot
	raise_inotify_limits
	ensure_dockerd
	ensure_host_image
	ensure_key
	step "network and hosts"
	ensure_network "$prefix"
	add_guard
	remove_hosts_over "$n"
	for ((i = 1; i <= n; i++)); do
		name=lab$i
		ip=$(host_ip "$prefix" "$i")
		c=$(container "$name")
		if docker container inspect "$c" >/dev/null 2>&1; then
			local cimg cip running
			cimg=$(docker inspect -f '{{.Config.Image}}' "$c")
			cip=$(docker inspect -f "{{with index .NetworkSettings.Networks \"$NET\"}}{{.IPAMConfig.IPv4Address}}{{end}}" "$c" 2>/dev/null || true)
			if [ "$cimg" != "$IMAGE" ] || [ "$cip" != "$ip" ]; then
				info "re-creating $name (image $cimg, ip ${cip:-none}; want $IMAGE, $ip)"
				docker rm -f -v "$c" >/dev/null
			else
				running=$(docker inspect -f '{{.State.Running}}' "$c")
				[ "$running" = true ] || docker start "$c" >/dev/null
				install_key "$name" # the key may be new
				specs+=("$name $ip $(now_us)")
				kept=$((kept + 1))
				continue
			fi
		fi
		specs+=("$name $ip $(now_us)")
		run_host "$name" "$ip" "$IMAGE"
		made=$((made + 1))
	done
	info "$made started, $kept already there; waiting for systemd and ssh (seconds since each host started):"
	wait_hosts "${specs[@]}" || die "some hosts did not come up"
	write_files "$prefix" "$n" "$cp" "$IMAGE"
	prune_old_images
	done_step
	say "lab is up in $(secs "$T_START")s: $n host(s) on $prefix.0/24"
	info "cluster file: $CLUSTER"
	info "hosts:        $HOSTS_JSON"
	info "ssh:          ssh -i $KEY root@$(host_ip "$prefix" 1)   (or: test/lab/lab.sh ssh lab1)"
}

cmd_down() {
	local clean=${1:-} ok=1 c
	[ "$(id -u)" = 0 ] || die "run as root"
	say "lab-down${clean:+ (clean)}"
	lock
	if docker_ok; then
		step "removing hosts and network${clean:+, and the images}"
		for c in $(lab_containers); do
			docker rm -f -v "$c" >/dev/null
			info "removed $c"
		done
		if docker network inspect "$NET" >/dev/null 2>&1; then
			docker network rm "$NET" >/dev/null
			info "removed network $NET"
		fi
		if [ -n "$clean" ]; then
			local img
			for img in $(docker images --filter "label=$LABEL" --format '{{.Repository}}:{{.Tag}}') $BASE_IMAGE; do
				docker rmi "$img" >/dev/null 2>&1 && info "removed image $img" || true
			done
			docker image prune -f --filter "label=$LABEL" >/dev/null 2>&1 || true
		fi
		done_step
	else
		info "docker does not answer: no hosts to remove"
		[ -n "$clean" ] && [ -d /var/lib/docker ] && info "(images stay in /var/lib/docker: lab-clean removes them when dockerd runs)"
	fi
	remove_tagged iptables
	remove_tagged ip6tables
	stop_our_dockerd

	if [ -f "$STATE/snapshot.done" ]; then
		if [ -f "$STATE/dockerd.started" ]; then
			step "restoring the iptables snapshot (dockerd was started by the lab)"
			restore_tables iptables ip "$STATE/iptables.snapshot"
			restore_tables ip6tables ip6 "$STATE/ip6tables.snapshot"
			done_step
			cleanup_runtime
		fi
		step "restoring sysctls changed since lab-up"
		restore_sysctls
		done_step
		remove_new_links
	else
		info "no snapshot in $STATE (the lab was not up): nothing to restore"
	fi

	[ -n "$clean" ] && rm -rf "$CACHE" && info "removed $CACHE"

	verify_down || ok=
	if [ -n "$ok" ]; then
		rm -rf "$STATE" "$HOSTS_JSON" "$CLUSTER"
		say "lab is down in $(secs "$T_START")s; the machine is as it was before lab-up"
	else
		die "lab-down left something behind (see above); the snapshot stays in $STATE"
	fi
}

# Built-in chains of each table, for a table that was not in the snapshot.
builtin_chains() {
	case $1 in
	filter | security) echo INPUT FORWARD OUTPUT ;;
	nat) echo PREROUTING INPUT OUTPUT POSTROUTING ;;
	mangle) echo PREROUTING INPUT FORWARD OUTPUT POSTROUTING ;;
	raw) echo PREROUTING OUTPUT ;;
	esac
}

tables_of() { awk '/^\*/ {print substr($0, 2)}' "$@" | sort -u; }

restore_tables() { # iptables|ip6tables nft-family snapshot
	local cmd=$1 fam=$2 snap=$3 now t ch
	command -v "$cmd-restore" >/dev/null || return 0
	now=$(mktemp)
	"$cmd-save" >"$now" 2>/dev/null || true
	local new=()
	mapfile -t new < <(comm -13 <(tables_of "$snap") <(tables_of "$now"))
	{
		{ grep -v '^#' "$snap" || true; } | untagged
		for t in "${new[@]}"; do
			echo "*$t"
			for ch in $(builtin_chains "$t"); do echo ":$ch ACCEPT [0:0]"; done
			echo COMMIT
		done
	} | "$cmd-restore" -w
	rm -f "$now"
	# iptables-nft keeps a table it once made; delete those that were not there.
	if [ ${#new[@]} -gt 0 ]; then
		if "$cmd" --version 2>/dev/null | grep -q nf_tables && command -v nft >/dev/null; then
			for t in "${new[@]}"; do
				if nft delete table "$fam" "$t"; then
					info "deleted $cmd table $t (it did not exist before the lab)"
				else
					warn "cannot delete nft table $fam $t"
				fi
			done
		else
			info "$cmd tables ${new[*]} are empty now but were absent before"
		fi
	fi
}

# Writable sysctls that change by themselves and must not be "restored".
VOLATILE_SYSCTLS='^(kernel\.ns_last_pid|kernel\.random\.|fs\.(dentry-state|file-nr|inode-nr|inode-state)|net\.netfilter\.nf_conntrack_count)$'

sysctl_path() { echo "/proc/sys/$(tr './' '/.' <<<"$1")"; }

# key<US>before<US>now for every writable sysctl that differs from the snapshot.
sysctl_changes() {
	local cur key before after
	cur=$(mktemp)
	sysctl -a 2>/dev/null >"$cur" || true
	# A key printed on several lines (some kernels have such files, e.g.
	# fs.pipe-keep: one "name value" per line) is a table, not a setting
	# the lab changes, and cannot be written back as one value: skipped.
	awk '
		{ i = index($0, " = "); if (i == 0) next; k = substr($0, 1, i - 1); v = substr($0, i + 3) }
		NR == FNR { old[k] = v; nold[k]++; next }
		{ cur[k] = v; ncur[k]++ }
		END {
			for (k in cur)
				if ((k in old) && nold[k] == 1 && ncur[k] == 1 && old[k] != cur[k])
					printf "%s\037%s\037%s\n", k, old[k], cur[k]
		}
	' "$STATE/sysctl.snapshot" "$cur" | sort |
		while IFS=$'\037' read -r key before after; do
			[[ $key =~ $VOLATILE_SYSCTLS ]] && continue
			[ -w "$(sysctl_path "$key")" ] || continue
			printf '%s\037%s\037%s\n' "$key" "$before" "$after"
		done
	rm -f "$cur"
}

restore_sysctls() {
	local key before after changes count=0
	for _ in 1 2 3; do
		changes=$(sysctl_changes)
		[ -z "$changes" ] && break
		while IFS=$'\037' read -r key before after; do
			if printf '%s\n' "$before" >"$(sysctl_path "$key")" 2>/dev/null; then
				info "$key: $after -> $before"
				count=$((count + 1))
			else
				warn "cannot restore $key to '$before' (now '$after')"
			fi
		done <<<"$changes"
	done
	((count > 0)) || info "no sysctl changed"
}

# The mounts and runtime directories our dockerd left (its netns bind mount,
# /run/docker, /run/containerd), unless a dockerd runs again.
cleanup_runtime() {
	pgrep -x dockerd >/dev/null && return 0
	local m p
	for m in $(comm -13 "$STATE/mounts.snapshot" <(mounts) | grep -E "$RUNTIME_MOUNTS" | sort -r); do
		umount "$m" && info "unmounted $m" || warn "cannot unmount $m"
	done
	for p in "${RUNTIME_PATHS[@]}"; do
		grep -qx "$p" "$STATE/paths.snapshot" && continue
		[ -e "$p" ] || continue
		if mounts | grep -q "^$p/"; then
			warn "$p still has mounts: left in place"
			continue
		fi
		rm -rf "$p" && info "removed $p"
	done
}

# Links that appeared with the lab (Docker's bridge, veths) and are still there.
remove_new_links() {
	local l
	for l in $(comm -13 "$STATE/links.snapshot" <(links)); do
		case $l in
		"$BRIDGE" | docker0 | veth*)
			ip link delete "$l" 2>/dev/null && info "deleted link $l" || true
			;;
		esac
	done
}

# Is everything gone? Prints one line per check; returns 1 if something is left.
verify_down() {
	local bad=0 left p
	say "checking that nothing of the lab is left"
	check() { # ok? message
		if [ "$1" = 0 ]; then info "ok    $2"; else
			info "LEFT  $2"
			bad=1
		fi
	}
	if docker_ok; then
		left=$(docker ps -aq --filter "label=$LABEL=host" | wc -l)
		check "$left" "lab containers: $left"
		docker network inspect "$NET" >/dev/null 2>&1 && left=1 || left=0
		check "$left" "network $NET: $([ "$left" = 0 ] && echo none || echo exists)"
	else
		check 0 "containers and network: dockerd is not running"
	fi
	if ip link show "$BRIDGE" >/dev/null 2>&1; then check 1 "bridge $BRIDGE exists"; else check 0 "bridge $BRIDGE: none"; fi
	left=$(tagged_rules)
	check "$([ -z "$left" ] && echo 0 || echo 1)" "iptables rules tagged $TAG: $(grep -c . <<<"$left" || true)"
	[ -n "$left" ] && sed 's/^/          /' <<<"$left"
	local pid
	if pid=$(our_dockerd); then check 1 "the dockerd lab-up started still runs (pid $pid)"; else
		if [ -f "$STATE/dockerd.started" ]; then
			check "$(pgrep -x dockerd >/dev/null && echo 1 || echo 0)" "dockerd: $(pgrep -x dockerd >/dev/null && echo "running (pid $(pgrep -x dockerd))" || echo "stopped")"
		else
			check 0 "dockerd: not started by the lab ($(pgrep -x dockerd >/dev/null && echo running || echo not running))"
		fi
	fi
	if [ -f "$STATE/snapshot.done" ]; then
		local d
		if [ -f "$STATE/dockerd.started" ]; then
			for d in iptables ip6tables; do
				if left=$(diff <(normalize_rules <"$STATE/$d.snapshot" | untagged) <("$d-save" 2>/dev/null | normalize_rules)); then
					check 0 "$d-save equals the snapshot (ignoring counters)"
				else
					check 1 "$d-save differs from the snapshot:"
					sed 's/^/          /' <<<"$left"
				fi
			done
		else
			info "skip  iptables-save vs snapshot: dockerd was running before the lab and keeps its rules"
		fi
		left=$(sysctl_changes)
		check "$([ -z "$left" ] && echo 0 || echo 1)" "sysctls differing from the snapshot: $(grep -c . <<<"$left" || true)"
		[ -n "$left" ] && awk -F'\037' '{printf "          %s: %s (was %s)\n", $1, $3, $2}' <<<"$left"
		left=$(comm -13 "$STATE/links.snapshot" <(links) | tr '\n' ' ')
		check "$([ -z "$left" ] && echo 0 || echo 1)" "network links added since lab-up: ${left:-none}"
		left=$(comm -13 "$STATE/mounts.snapshot" <(mounts) | grep -E "$RUNTIME_MOUNTS" | tr '\n' ' ' || true)
		check "$([ -z "$left" ] && echo 0 || echo 1)" "Docker mounts added since lab-up: ${left:-none}"
		if [ -f "$STATE/dockerd.started" ]; then
			left=$(for p in "${RUNTIME_PATHS[@]}"; do [ -e "$p" ] && ! grep -qx "$p" "$STATE/paths.snapshot" && echo "$p"; done | tr '\n' ' ' || true)
			check "$([ -z "$left" ] && echo 0 || echo 1)" "dockerd runtime files left: ${left:-none}"
			left=$(pgrep -f 'containerd-shim|docker/containerd/containerd.toml' | tr '\n' ' ' || true)
			check "$([ -z "$left" ] && echo 0 || echo 1)" "containerd/shim processes of our dockerd: ${left:-none}"
		fi
	fi
	return $bad
}

normalize_rules() { grep -v '^#' | sed -E 's/ \[[0-9]+:[0-9]+\]$//; s/^(:[^ ]+ [^ ]+) \[[0-9]+:[0-9]+\]$/\1/'; }

cmd_status() {
	local c
	if ! docker_ok; then
		say "dockerd is not running: the lab is down"
		return 0
	fi
	local pid
	if pid=$(our_dockerd); then say "dockerd: started by the lab (pid $pid)"; else say "dockerd: not started by the lab"; fi
	say "hosts"
	for c in $(lab_containers); do
		docker inspect -f "    {{.Config.Hostname}}  {{.Name}}  {{with index .NetworkSettings.Networks \"$NET\"}}{{.IPAddress}}{{end}}  {{.State.Status}}  {{.Config.Image}}" "$c"
	done
	say "guard rules (DOCKER-USER)"
	iptables -w -nvx -L DOCKER-USER 2>/dev/null | sed 's/^/    /' || true
	if [ -f "$STATE/snapshot.done" ]; then
		say "sysctls changed since lab-up"
		sysctl_changes | awk -F'\037' '{printf "    %s: %s -> %s\n", $1, $2, $3}'
	fi
}

# One host, by name; its ip and the image come from hosts.json.
host_field() { # name field
	[ -f "$HOSTS_JSON" ] || die "no $HOSTS_JSON: the lab is not up (make lab-up)"
	local v
	v=$(jq -er --arg n "$1" --arg f "$2" '.hosts[] | select(.name == $n) | .[$f]' "$HOSTS_JSON") ||
		die "no host $1 in $HOSTS_JSON"
	echo "$v"
}

cmd_host() { # start|stop|recreate|wait NAME
	local what=$1 name=${2:-} ip image start
	[ -n "$name" ] || die "usage: lab.sh $what NAME"
	need_docker
	ip=$(host_field "$name" ip)
	start=$(now_us)
	case $what in
	stop)
		docker stop "$(container "$name")" >/dev/null
		info "$name stopped in $(secs "$start")s"
		return 0
		;;
	start)
		docker start "$(container "$name")" >/dev/null
		;;
	recreate)
		lock
		image=$(jq -r .image "$HOSTS_JSON")
		docker rm -f -v "$(container "$name")" >/dev/null 2>&1 || true
		run_host "$name" "$ip" "$image"
		;;
	wait) ;;
	esac
	wait_host "$name" "$ip" "$start"
}

cmd_ssh() {
	local name=${1:-}
	[ -n "$name" ] || die "usage: lab.sh ssh NAME [COMMAND...]"
	shift
	exec ssh "${SSH_OPTS[@]/BatchMode=yes/BatchMode=no}" "root@$(host_field "$name" ip)" "$@"
}

main() {
	local cmd=${1:-} prefix
	[ $# -gt 0 ] && shift
	case $cmd in
	up) cmd_up "$@" ;;
	down) cmd_down ;;
	clean)
		# Images can only be removed through a dockerd: start ours if none runs.
		if ! docker_ok && [ -d /var/lib/docker ] && command -v dockerd >/dev/null; then
			lock
			take_snapshot
			ensure_dockerd
			exec 9>&-
		fi
		cmd_down clean
		;;
	status) cmd_status ;;
	start | stop | recreate | wait) cmd_host "$cmd" "$@" ;;
	ssh) cmd_ssh "$@" ;;
	render-hosts) # N CP [IMAGE]: print hosts.json without starting anything (tests)
		[ $# -ge 2 ] || die "usage: lab.sh render-hosts N CP [IMAGE]"
		check_counts "$1" "$2"
		prefix=$(subnet_prefix)
		hosts_json "$prefix" "$1" "$2" "${3:-$IMAGE_REPO:test}"
		;;
	render-cluster) render_cluster "$@" ;;
	*)
		sed -n '3,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
		exit 2
		;;
	esac
}

main "$@"
