package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestClientInTerminal drives the real binary in a pseudo-terminal, as a person would: tmux runs
// "wsgate client" in a detached session, the test types into it and reads the screen. It needs
// tmux, which scripts/test installs; without it the test fails rather than skips.
func TestClientInTerminal(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Fatal("tmux is needed to test wsgate client in a terminal: apt-get install -y tmux (scripts/test does)")
	}
	bin := filepath.Join(t.TempDir(), "wsgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	r := startRun(t)

	// A tmux server of our own (-L), so that nothing else's sessions are touched; killed at cleanup.
	socket := "wsgate-test-" + strconv.Itoa(os.Getpid())
	term := &terminal{t: t, tmux: tmux, socket: socket}
	t.Cleanup(func() { _, _ = exec.Command(tmux, "-L", socket, "kill-server").CombinedOutput() })

	t.Run("type, then Ctrl-C", func(t *testing.T) {
		term.t = t
		term.start(bin + " client " + r.wsURL())
		term.waitFor("connected: " + r.wsURL() + "\n>") // the prompt ("> "; tmux trims trailing spaces)
		term.keys("Hello!", "Enter")
		term.waitFor("> Hello!\nHello! done\n>")
		term.keys("C-c")
		term.waitFor("closed: 1000", "exit=0")
	})
	t.Run("type, then Ctrl-D", func(t *testing.T) {
		term.t = t
		term.start(bin + " client -binary " + r.wsURL())
		term.waitFor("\n>")
		term.keys("hi", "Enter")
		term.waitFor("[binary hex] 686920646f6e65")
		term.keys("C-d")
		term.waitFor("closed: 1000", "exit=0")
	})
}

// terminal is one tmux window running a shell command.
type terminal struct {
	t            *testing.T
	tmux, socket string
	session      int
}

func (tm *terminal) run(args ...string) string {
	tm.t.Helper()
	out, err := exec.Command(tm.tmux, append([]string{"-L", tm.socket}, args...)...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %q: %v\n%s", args, err, out)
	}
	return string(out)
}

// start opens a new session running command, then "exit=<status>" once it has ended.
func (tm *terminal) start(command string) {
	tm.session++
	tm.run("new-session", "-d", "-s", tm.name(), "-x", "100", "-y", "20", command+"; echo exit=$?; sleep 600")
}

func (tm *terminal) name() string { return "client" + strconv.Itoa(tm.session) }

// keys types into the session (tmux key names: "Enter", "C-c").
func (tm *terminal) keys(keys ...string) {
	tm.run(append([]string{"send-keys", "-t", tm.name()}, keys...)...)
}

// waitFor polls the screen until it shows every one of want.
func (tm *terminal) waitFor(want ...string) {
	tm.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		screen := tm.run("capture-pane", "-p", "-t", tm.name())
		missing := ""
		for _, w := range want {
			if !strings.Contains(screen, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("the terminal does not show %q within 10s; screen:\n%s", missing, screen)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
