package wsgate_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// TestDocLinks keeps the documentation's relative links working: every link and image in the
// README, BENCHMARKS.md and docs/ must name a file or folder of the repository, and a #fragment
// must name a heading of its Markdown file. Links to other sites are not fetched.
func TestDocLinks(t *testing.T) {
	files, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, docs...)
	if len(files) < 3 {
		t.Fatalf("found only %v: run from the module root", files)
	}
	for _, f := range files {
		for _, problem := range brokenLinks(t, ".", f) {
			t.Error(problem)
		}
	}
}

// TestDocLinksFindsBrokenOnes is the check's own check: a missing file, a missing heading and a
// link out of the repository are reported; a good link, a link in code and a web link are not.
func TestDocLinksFindsBrokenOnes(t *testing.T) {
	root := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("docs/B.md", "# B\n\n## Close codes: reconnect or stop\n\n## Pub/sub: `/js/x.js`\n")
	write("A.md", "# A\n\n"+
		"[good](docs/B.md#close-codes-reconnect-or-stop) [good](docs/B.md#pubsub-jsxjs) [self](#a) [dir](docs/)\n"+
		"[web](https://example.com/missing) `[code](missing.md)`\n\n```\n[fenced](missing.md)\n```\n\n"+
		"[file](docs/missing.md) ![image](img.svg) [heading](docs/B.md#nowhere) [self](#nowhere) [out](../x.md)\n")
	got := brokenLinks(t, root, "A.md")
	want := []string{"docs/missing.md", "img.svg", "docs/B.md#nowhere", "#nowhere", "../x.md"}
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d (%v):\n%s", len(got), len(want), want, strings.Join(got, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(got[i], "("+w+")") {
			t.Errorf("problem %d = %q, want one about %s", i, got[i], w)
		}
	}
}

var (
	fencedCode = regexp.MustCompile("(?ms)^```.*?^```")
	inlineCode = regexp.MustCompile("`[^`\n]*`")
	mdLink     = regexp.MustCompile(`\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	mdHeading  = regexp.MustCompile(`(?m)^#{1,6}\s+(.+?)\s*#*\s*$`)
)

// brokenLinks returns a line per relative link of file (a path under root) that does not resolve.
func brokenLinks(t *testing.T, root, file string) []string {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		t.Fatal(err)
	}
	prose := inlineCode.ReplaceAllString(fencedCode.ReplaceAllString(string(text), ""), "")
	var problems []string
	for _, m := range mdLink.FindAllStringSubmatch(prose, -1) {
		target := m[1]
		if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
			continue
		}
		path, fragment, _ := strings.Cut(target, "#")
		resolved := file
		if path != "" {
			resolved = filepath.Join(filepath.Dir(file), path)
		}
		if resolved == ".." || strings.HasPrefix(resolved, "../") || filepath.IsAbs(path) {
			problems = append(problems, fmt.Sprintf("%s: (%s) leaves the repository", file, target))
			continue
		}
		if _, err := os.Stat(filepath.Join(root, resolved)); err != nil {
			problems = append(problems, fmt.Sprintf("%s: (%s): no such file", file, target))
			continue
		}
		if fragment == "" || !strings.HasSuffix(resolved, ".md") {
			continue
		}
		if anchors := headingAnchors(t, filepath.Join(root, resolved)); !anchors[fragment] {
			problems = append(problems, fmt.Sprintf("%s: (%s): %s has no heading with that anchor", file, target, resolved))
		}
	}
	return problems
}

// headingAnchors returns the anchors GitHub gives the headings of a Markdown file: lower case,
// spaces to hyphens, punctuation dropped, "-1", "-2" … after repeats.
func headingAnchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	seen := map[string]int{}
	for _, m := range mdHeading.FindAllStringSubmatch(fencedCode.ReplaceAllString(string(text), ""), -1) {
		var b strings.Builder
		for _, r := range strings.ToLower(m[1]) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteByte('-')
			}
		}
		anchor := b.String()
		if n := seen[anchor]; n > 0 {
			anchors[fmt.Sprintf("%s-%d", anchor, n)] = true
		} else {
			anchors[anchor] = true
		}
		seen[anchor]++
	}
	return anchors
}
