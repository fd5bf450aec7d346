package conformance

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
)

// DefaultRelease is the OTP release a daemon of unknown release is held
// to where releases differ: the one the scripts were first recorded from.
const DefaultRelease = 25

var (
	ertsRE = regexp.MustCompile(`erts-(\d+)\.`)
	otpRE  = regexp.MustCompile(`(?i)\botp[-_/ ]?(\d{2})\b|/(\d{2})\.\d+(?:\.\d+)*/`)
)

// DetectRelease guesses the OTP release of a stock epmd from where it is
// installed: the erts-V.v directory it sits in (erts 13 is OTP 25, erts
// 15 OTP 27, one major per release) or an "otp-NN" or "NN.x.y" directory
// in its path. For a wrapper script, the script's text is searched the
// same way. It returns 0 when it cannot tell.
func DetectRelease(path string) int {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		real = path
	}
	if n := releaseIn(real); n > 0 {
		return n
	}
	f, err := os.Open(real)
	if err != nil {
		return 0
	}
	defer f.Close()
	head := make([]byte, 8192)
	k, _ := io.ReadFull(f, head)
	head = head[:k]
	if k > 2 && string(head[:2]) == "#!" {
		return releaseIn(string(head))
	}
	return 0
}

func releaseIn(s string) int {
	if m := ertsRE.FindStringSubmatch(s); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil && n >= 12 {
			return n + 12
		}
	}
	if m := otpRE.FindStringSubmatch(s); m != nil {
		v := m[1]
		if v == "" {
			v = m[2]
		}
		if n, err := strconv.Atoi(v); err == nil && n >= 17 && n < 100 {
			return n
		}
	}
	return 0
}
