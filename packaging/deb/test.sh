#!/bin/sh
# End-to-end test of the Debian package in a throwaway Debian root, never
# on this machine's own Erlang installation (its stock epmd is the oracle
# of the other tests).
#
#   packaging/deb/test.sh DEB
#
# Needs root, mmdebstrap and unshare. The root is built by mmdebstrap
# (minbase, erlang-base and init-system-helpers) from this machine's own
# apt sources and cached as a tarball in $GOPMD_CACHE (default
# ~/.cache/gopmd) for a week; each run unpacks it into a temporary
# directory that it removes at the end. The steps run in fresh mount,
# PID and network namespaces: every process started inside dies with
# them, the mounts vanish with them, and the nodes only ever see the
# namespace's own loopback. Even there they use port 14369, not 4369.
#
# What it checks, in the root:
#   1. installing the package diverts each stock erts-*/bin/epmd (kept as
#      epmd.distrib, byte for byte; dpkg --verify erlang-base stays
#      clean), enables gopmd.socket and disables erlang-base's
#      epmd.socket/epmd.service;
#   2. `erl -sname` auto-starts gopmd (`epmd -daemon` through the diverted
#      path), and the stock client-side tools see it;
#   3. `apt-get install --reinstall erlang-base` leaves the drop-in in
#      place (the new stock binary goes to epmd.distrib) and erl still
#      starts gopmd;
#   4. a package that brings a new erts-*/bin/epmd (as an erlang-base
#      upgrade does) gets it diverted by the trigger, and its removal
#      leaves no diversion nor file behind; purging erlang-base leaves
#      no /usr/lib/erlang, and installing it again (which enables its
#      units) brings the diversions and the units' take-over back;
#   5. purging the package restores /usr/lib/erlang exactly (every file's
#      type, mode and contents compared with the listing taken before the
#      installation), erlang-base's units are enabled again, and erl
#      starts the stock epmd.
set -eu

deb=${1:?usage: test.sh DEB}
[ -f "$deb" ] || { echo "test.sh: $deb: no such file" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "test.sh: needs root (mmdebstrap, chroot, namespaces)" >&2; exit 1; }
for c in mmdebstrap unshare chroot ip; do
	command -v "$c" >/dev/null || { echo "test.sh: $c not found (apt-get install mmdebstrap util-linux iproute2)" >&2; exit 1; }
done

. /etc/os-release
suite=${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}
arch=$(dpkg --print-architecture)
cache=${GOPMD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gopmd}/debroot
tarball=$cache/$suite-$arch.tar

# The machine's own apt sources for this suite: deb822 files and
# one-line lists that name it. Nothing here names an archive.
sources=
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
	[ -f "$f" ] && grep -qw "$suite" "$f" || continue
	sources="$sources $f"
done
[ -n "$sources" ] || { echo "test.sh: no apt source for $suite in /etc/apt" >&2; exit 1; }

if [ -z "$(find "$tarball" -mtime -7 2>/dev/null)" ]; then
	echo "== bootstrapping a $suite root into $tarball"
	mkdir -p "$cache"
	# Keep the package lists and erlang-base's .deb, so that the
	# reinstall below needs no network.
	# shellcheck disable=SC2086
	mmdebstrap --format=tar --variant=minbase --include=erlang-base,init-system-helpers \
		--skip=cleanup/apt \
		--customize-hook='find "$1/var/cache/apt/archives" -name "*.deb" ! -name "erlang-base_*" -delete' \
		"$suite" "$tarball.new" $sources
	mv -f "$tarball.new" "$tarball"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/gopmd-deb-test.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
root=$work/root
mkdir "$root"
tar -C "$root" -xf "$tarball"
cp "$deb" "$root/tmp/gopmd.deb"

# The steps inside the root, as one script.
cat >"$root/tmp/steps.sh" <<'EOF'
#!/bin/sh
set -eu
# No network here: apt installs only what the root's cache holds, so
# without erlang-base's recommended packages, as mmdebstrap installed it.
export ERL_EPMD_PORT=14369 DEBIAN_FRONTEND=noninteractive
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

# snapshot lists every path under /usr/lib/erlang with its type, mode and
# link target, then every file's checksum.
snapshot() {
	find /usr/lib/erlang -printf '%p %y %m %l\n' | LC_ALL=C sort
	find /usr/lib/erlang -type f -exec sha256sum {} + | LC_ALL=C sort -k 2
}

# daemon_exes prints the executable of every running epmd-like daemon.
daemon_exes() {
	for d in /proc/[0-9]*; do
		exe=$(readlink "$d/exe" 2>/dev/null) || continue
		case "$exe" in */epmd*|*/gopmd) echo "$exe" ;; esac
	done
}

# node_starts_daemon runs a node that lets erl start epmd itself and
# checks which binary the daemon is, then stops it.
node_starts_daemon() {
	want=$1
	name=t$$_$2
	out=$(erl -sname "$name" -noshell -eval 'io:format("~p~n", [net_adm:names()]), halt().' 2>&1) ||
		fail "erl -sname $name: $out"
	echo "$out" | grep -q "\"$name\"" || fail "erl -sname $name did not see itself registered: $out"
	exes=$(daemon_exes)
	[ "$exes" = "$want" ] || fail "running daemon is '$exes', want '$want'"
	epmd -kill >/dev/null || fail "epmd -kill"
	for _ in 1 2 3 4 5 6 7 8 9 10; do [ -z "$(daemon_exes)" ] && return 0; sleep 0.2; done
	fail "daemon still running after epmd -kill"
}

mount -t proc proc /proc

erts=$(ls -d /usr/lib/erlang/erts-*)
[ "$(echo "$erts" | wc -l)" = 1 ] || fail "expected one erts-* directory: $erts"
stock_exe=$erts/bin/epmd

step "before: erl starts the stock epmd"
snapshot >/tmp/before
[ -L /etc/systemd/system/sockets.target.wants/epmd.socket ] || fail "erlang-base's epmd.socket is not enabled to begin with"
node_starts_daemon "$stock_exe" stock1

step "install the package"
apt-get install -y -q --no-install-recommends /tmp/gopmd.deb >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; fail "apt-get install ./gopmd.deb"; }
check_installed() {
	for e in /usr/lib/erlang/erts-*; do
		[ "$(readlink "$e/bin/epmd")" = /usr/bin/gopmd ] || fail "$e/bin/epmd is not the gopmd link"
		[ "$(dpkg-divert --listpackage "$e/bin/epmd")" = gopmd ] || fail "$e/bin/epmd is not diverted by gopmd"
		[ -f "$e/bin/epmd.distrib" ] || fail "$e/bin/epmd.distrib missing"
	done
	epmd -version | grep -q '^gopmd ' || fail "epmd -version: $(epmd -version 2>&1)"
	v=$(dpkg --verify erlang-base 2>&1) && [ -z "$v" ] || fail "dpkg --verify erlang-base: $v"
	[ -L /etc/systemd/system/sockets.target.wants/gopmd.socket ] || fail "gopmd.socket not enabled"
	[ ! -e /etc/systemd/system/sockets.target.wants/epmd.socket ] || fail "epmd.socket still enabled"
	[ ! -e /etc/systemd/system/multi-user.target.wants/epmd.service ] || fail "epmd.service still enabled"
}
check_installed
grep -q "^$erts/bin/epmd.distrib " /tmp/before && fail "epmd.distrib existed before"
before_sum=$(grep " $stock_exe\$" /tmp/before | cut -d' ' -f1)
[ -n "$before_sum" ] || fail "no checksum of $stock_exe in the snapshot"
[ "$(sha256sum <"$erts/bin/epmd.distrib" | cut -d' ' -f1)" = "$before_sum" ] || fail "epmd.distrib differs from the stock binary"
echo "gopmd: $(epmd -version)"

step "erl -sname auto-starts gopmd"
node_starts_daemon /usr/bin/gopmd gopmd1

step "apt-get install --reinstall erlang-base"
apt-get install -y -q --no-install-recommends --reinstall erlang-base >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; fail "reinstall erlang-base"; }
check_installed
node_starts_daemon /usr/bin/gopmd gopmd2

step "a package bringing a new erts directory (as an upgrade does)"
mkdir -p /tmp/fake/DEBIAN /tmp/fake/usr/lib/erlang/erts-99.0/bin
cp "$erts/bin/epmd.distrib" /tmp/fake/usr/lib/erlang/erts-99.0/bin/epmd
printf 'Package: gopmd-test-erts\nVersion: 1\nArchitecture: all\nMaintainer: gopmd test <test@invalid>\nDescription: test\n' >/tmp/fake/DEBIAN/control
dpkg-deb -b /tmp/fake /tmp/fake.deb >/dev/null
dpkg -i /tmp/fake.deb >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -i fake erts"; }
check_installed
dpkg -P gopmd-test-erts >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -P fake erts"; }
[ ! -e /usr/lib/erlang/erts-99.0 ] || fail "erts-99.0 left behind: $(ls -lR /usr/lib/erlang/erts-99.0)"
dpkg-divert --list | grep -q erts-99.0 && fail "diversion of erts-99.0 left behind"
check_installed

step "erlang-base purged, then installed again, while the package stays"
apt-get purge -y -q erlang-base >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; fail "apt-get purge erlang-base"; }
[ ! -e /usr/lib/erlang ] || fail "/usr/lib/erlang left behind: $(find /usr/lib/erlang | head)"
dpkg-divert --list | grep -q gopmd && fail "gopmd diversions left after erlang-base's removal"
apt-get install -y -q --no-install-recommends erlang-base >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; fail "apt-get install erlang-base"; }
check_installed
node_starts_daemon /usr/bin/gopmd gopmd3

step "purge the package"
apt-get purge -y -q gopmd >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; fail "apt-get purge gopmd"; }
snapshot >/tmp/after
diff -u /tmp/before /tmp/after || fail "/usr/lib/erlang differs from before the installation"
dpkg-divert --list | grep -q gopmd && fail "gopmd diversions left: $(dpkg-divert --list | grep gopmd)"
[ ! -e /usr/bin/gopmd ] || fail "/usr/bin/gopmd left behind"
[ -L /etc/systemd/system/sockets.target.wants/epmd.socket ] || fail "epmd.socket not enabled again"
[ ! -e /etc/systemd/system/sockets.target.wants/gopmd.socket ] || fail "gopmd.socket still enabled"
[ ! -e /var/lib/gopmd ] || fail "/var/lib/gopmd left behind"
node_starts_daemon "$stock_exe" stock2
echo "deb-test: all steps passed"
EOF

# A new mount namespace (the proc mount dies with it), a new PID
# namespace (every daemon the nodes start dies with it), a new network
# namespace (only its own loopback, brought up here with the host's ip).
unshare --mount --pid --net --fork --kill-child \
	sh -c 'ip link set lo up && exec chroot "$1" /bin/sh /tmp/steps.sh' sh "$root"
