package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestInstallOTPWarnsOfForeignRootdir runs make install-otp on a minimal
// OTP tree whose erl scripts pin ROOTDIR to another installation, as
// Debian's do (ROOTDIR=/usr/lib/erlang) in a copy of /usr/lib/erlang:
// nodes started through them would run the other installation's epmd, so
// install-otp must say so. Once the scripts name the tree itself, it
// must not. A dpkg on PATH that claims the tree's epmd for a package
// (the tree stands for /usr/lib/erlang then) must get a warning too:
// the package's next upgrade would put the stock epmd back.
func TestInstallOTPWarnsOfForeignRootdir(t *testing.T) {
	t.Parallel()
	makeBin, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make not found: the install-otp target cannot be run")
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	otp := t.TempDir()
	other := t.TempDir() // the installation the scripts were copied from
	for _, d := range []string{"bin", "erts-1.0/bin"} {
		if err := os.MkdirAll(filepath.Join(otp, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The "stock" epmd: any file will do, install-otp only moves it.
	if err := os.WriteFile(filepath.Join(otp, "erts-1.0/bin/epmd"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../erts-1.0/bin/epmd", filepath.Join(otp, "bin/epmd")); err != nil {
		t.Fatal(err)
	}
	script := func(rootdir string) string {
		return "#!/bin/sh\nif [ -z \"$ERL_ROOTDIR\" ]\nthen\n    ROOTDIR=" + rootdir +
			"\nelse\n    ROOTDIR=\"$ERL_ROOTDIR\"\nfi\nBINDIR=\"$ROOTDIR/erts-1.0/bin\"\nexec \"$BINDIR/erlexec\" ${1+\"$@\"}\n"
	}
	erlScripts := []string{filepath.Join(otp, "bin/erl"), filepath.Join(otp, "erts-1.0/bin/erl")}
	writeScripts := func(rootdir string) {
		for _, s := range erlScripts {
			if err := os.WriteFile(s, []byte(script(rootdir)), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	binDir := t.TempDir()
	// A dpkg that says the tree's erts-1.0/bin/epmd belongs to a package
	// when $FAKE_DPKG_OWNER is set, and that nothing is packaged otherwise.
	fakeBin := t.TempDir()
	fakeDpkg := "#!/bin/sh\n[ \"$1\" = -S ] && [ -n \"$FAKE_DPKG_OWNER\" ] && [ \"$2\" = \"" + otp + "/erts-1.0/bin/epmd\" ] || exit 1\n" +
		"echo \"$FAKE_DPKG_OWNER: $2\"\n"
	if err := os.WriteFile(filepath.Join(fakeBin, "dpkg"), []byte(fakeDpkg), 0o755); err != nil {
		t.Fatal(err)
	}
	install := func(owner string) string {
		t.Helper()
		cmd := exec.Command(makeBin, "--no-print-directory", "-C", repo, "install-otp", "OTP_ROOT="+otp, "BIN="+binDir)
		cmd.Env = append(os.Environ(), "PATH="+fakeBin+string(os.PathListSeparator)+os.Getenv("PATH"), "FAKE_DPKG_OWNER="+owner)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make install-otp: %v\n%s", err, out)
		}
		return string(out)
	}

	writeScripts(other)
	out := install("fake-erlang-base")
	for _, s := range erlScripts {
		if want := s + " sets ROOTDIR=" + other; !strings.Contains(out, want) {
			t.Errorf("make install-otp did not warn %q:\n%s", want, out)
		}
	}
	if want := otp + "/erts-1.0/bin/epmd belongs to a package (fake-erlang-base)"; !strings.Contains(out, want) {
		t.Errorf("make install-otp did not warn %q:\n%s", want, out)
	}
	if got := strings.Count(out, "warning:"); got != len(erlScripts)+1 {
		t.Errorf("make install-otp printed %d warnings, want %d (the $ERL_ROOTDIR line is no installation):\n%s", got, len(erlScripts)+1, out)
	}
	if b, err := os.ReadFile(filepath.Join(otp, "erts-1.0/bin/epmd.stock")); err != nil || !strings.HasPrefix(string(b), "#!/bin/sh") {
		t.Errorf("epmd.stock: %v, %q", err, b)
	}

	// Scripts that name the tree itself (through a symlink, as a path
	// may): no warning.
	link := filepath.Join(t.TempDir(), "otp")
	if err := os.Symlink(otp, link); err != nil {
		t.Fatal(err)
	}
	writeScripts(link)
	if out := install(""); strings.Contains(out, "warning:") {
		t.Errorf("make install-otp warned about an unpackaged tree whose scripts name it:\n%s", out)
	}
}
