# The lab: real test hosts on this machine (privileged Docker containers with
# systemd, sshd and their own address). The Makefile includes this file.
#
#   make lab-up [N=1] [CP=1]   start N hosts, the first CP of them control planes;
#                              writes .lab/cluster.yaml, .lab/hosts.json, .lab/id_ed25519
#   make lab-down              remove them and put the machine back as it was
#   make lab-clean             lab-down, and drop the cached images and rootfs
#   make lab-status            hosts, guard rules and their counters, changed sysctls
#
# LAB_SUBNET=172.30.0 (the first three octets of the lab's /24) and LAB_MIRROR
# (debootstrap's mirror; default: the one apt uses) are passed through;
# AIRGAP=1 cuts the hosts off from everything outside the lab.
# Needs root. See test/lab/README.md.

LAB_SH := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))/lab.sh
# AIRGAP=1: the hosts reach nothing outside the lab (no mirror, no DNS).
AIRGAP ?= 0
export LAB_SUBNET LAB_MIRROR
export LAB_AIRGAP := $(AIRGAP)
N  ?= 1
CP ?= 1

.PHONY: lab-up lab-down lab-clean lab-status

lab-up:
	bash $(LAB_SH) up $(N) $(CP)

lab-down:
	bash $(LAB_SH) down
	rm -rf .lab/cluster-state  # make demo's cluster state dies with the hosts

lab-clean:
	bash $(LAB_SH) clean

lab-status:
	bash $(LAB_SH) status
