#!/usr/bin/env bash
# check.sh: internal/gws must be exactly upstream gws (the version below, from the module cache)
# with this folder's patches applied in order, its imports renamed, and its tests, examples,
# assets and go.mod left out. The copy and the patches cannot drift apart.
#
#   check.sh         compare, print the differences, fail if any
#   check.sh -w      rewrite the copy's sources from upstream + patches (after adding a patch)
#   check.sh -test   also run upstream's own tests (they use testify) on the patched tree
#
# Offline once the module cache holds github.com/lxzan/gws (wsgate's go.mod requires it).
set -euo pipefail

version=v1.8.9
upstream_mod=github.com/lxzan/gws
copy_mod=github.com/wsgate/wsgate/internal/gws

here=$(cd "$(dirname "$0")" && pwd)
copy=$(dirname "$here")
mode=${1:-}

dir=$(cd "$copy" && go mod download -json "$upstream_mod@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$dir" ] || { echo "check.sh: $upstream_mod@$version is not in the module cache" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -R "$dir/." "$tmp/gws"
chmod -R u+w "$tmp/gws"
# Not inside any repository, even when $TMPDIR is: git apply then takes paths from the current directory.
(cd "$tmp/gws" && GIT_CEILING_DIRECTORIES="$tmp" git apply --whitespace=error-all "$here"/[0-9][0-9][0-9][0-9]-*.patch)

if [ "$mode" = -test ]; then
	(cd "$tmp/gws" && GOFLAGS=-mod=mod go test -count=1 ./...)
fi

# The copy: every non-test Go file of the patched tree outside examples/, and the license.
files=$(cd "$tmp/gws" && find . -path ./examples -prune -o -type f \( -name '*.go' ! -name '*_test.go' -o -name LICENSE \) -print | sed 's|^\./||' | sort)
status=0
for f in $files; do
	want="$tmp/want/$f"
	mkdir -p "$(dirname "$want")"
	sed "s|\"$upstream_mod/|\"$copy_mod/|" "$tmp/gws/$f" >"$want"
	if [ "$mode" = -w ]; then
		mkdir -p "$(dirname "$copy/$f")"
		cp "$want" "$copy/$f"
	elif ! diff -u --label "want/$f" --label "internal/gws/$f" "$want" "$copy/$f"; then
		status=1
	fi
done
# Nothing else in the copy but wsgate's own tests (*_test.go), PATCHES.md and this folder.
extra=$(cd "$copy" && find . -path ./patches -prune -o -type f ! -name '*_test.go' ! -name PATCHES.md -print | sed 's|^\./||' | sort | comm -23 - <(echo "$files"))
if [ -n "$extra" ]; then
	echo "check.sh: in internal/gws but not made by the patches:" $extra >&2
	status=1
fi
if [ $status -ne 0 ]; then
	echo "check.sh: internal/gws differs from upstream $version + patches (check.sh -w rewrites it)" >&2
fi
exit $status
