// Command nfpmconfig turns nfpm.yaml into the configuration nfpm builds
// from: it sets version, release and arch, and adds the pg-backup-api
// dependency for each packager, translated from the operator's pin
// (PG_BACKUP_API_VERSION). For a pinned deb it also adds an apt
// preferences file, so that apt keeps the pinned pg-backup-api. It prints
// the commands that install the packages with the right pg-backup-api.
//
//	go run ./packaging/nfpmconfig --pin '2.0.0*' --version 1.2.3 --out dist
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pgbapi/pgbapi-proxy/packaging/pin"
	flag "github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

func main() {
	in := flag.String("config", "nfpm.yaml", "the nfpm.yaml to start from")
	out := flag.String("out", "dist", "directory to write nfpm.yaml (and the apt preferences file) to")
	pinFlag := flag.String("pin", "", "pg-backup-api version pin: 2.0.0-1.el8, 2:2.0.0-1, 2.0.0, 2.0.0*, 2:2.0.0*; empty for any")
	version := flag.String("version", "", "package version (a git describe string is cleaned up)")
	release := flag.String("release", "1", "package release")
	arch := flag.String("arch", "amd64", "package architecture (Go's name)")
	build := flag.String("build", "bin", "directory make build wrote the program, man page and completion to (nfpm.yaml says bin/)")
	flag.Parse()
	if err := run(*in, *out, *pinFlag, *version, *release, *arch, *build); err != nil {
		fmt.Fprintln(os.Stderr, "nfpmconfig:", err)
		os.Exit(1)
	}
}

// run writes out/nfpm.yaml (and, for a pinned deb, the apt preferences
// file) from the nfpm.yaml in, and prints the dependencies it set.
func run(in, out, pinSpec, version, release, arch, build string) error {
	tr, err := pin.Translate(pinSpec)
	if err != nil {
		return err
	}
	v, err := PackageVersion(version)
	if err != nil {
		return err
	}
	if release == "" || !regexp.MustCompile(`^[0-9A-Za-z.+~]+$`).MatchString(release) {
		return fmt.Errorf("release %q: use digits and letters, e.g. 1", release)
	}
	cfg, err := readConfig(in)
	if err != nil {
		return err
	}
	cfg["version"], cfg["release"], cfg["arch"] = v, release, arch
	if cl, ok := cfg["changelog"].(string); ok && cl != "" {
		path, err := versionedChangelog(cl, out, v, release)
		if err != nil {
			return err
		}
		cfg["changelog"] = path
	}
	useBuildDir(cfg, build)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := addDependencies(cfg, out, tr); err != nil {
		return err
	}
	if err := writeConfig(cfg, in, out, pinSpec); err != nil {
		return err
	}
	fmt.Printf("deb Depends:  %s\nrpm Requires: %s\n", strings.Join(tr.DebDepends, ", "), strings.Join(tr.RPMRequire, ", "))
	return nil
}

// readConfig reads the nfpm.yaml to start from.
func readConfig(in string) (map[string]any, error) {
	data, err := os.ReadFile(in)
	if err != nil {
		return nil, err
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", in, err)
	}
	return cfg, nil
}

// useBuildDir points the contents nfpm.yaml takes from bin/ at build.
func useBuildDir(cfg map[string]any, build string) {
	contents, _ := cfg["contents"].([]any)
	for _, c := range contents {
		if m, ok := c.(map[string]any); ok {
			if src, ok := m["src"].(string); ok && strings.HasPrefix(src, "bin/") {
				m["src"] = filepath.Join(build, strings.TrimPrefix(src, "bin/"))
			}
		}
	}
}

// addDependencies adds the pg-backup-api dependency for each packager and,
// for a pinned deb, the apt pin.
func addDependencies(cfg map[string]any, out string, tr pin.Translation) error {
	cfg["overrides"] = map[string]any{
		"deb": map[string]any{"depends": tr.DebDepends},
		"rpm": map[string]any{"depends": tr.RPMRequire},
	}
	if tr.AptVersion == "" {
		return nil
	}
	return addAptPin(cfg, out, tr)
}

// addAptPin writes the apt preferences file that keeps apt on the pinned
// pg-backup-api, and adds it to the deb's contents.
func addAptPin(cfg map[string]any, out string, tr pin.Translation) error {
	pref := filepath.Join(out, "pgbapi-proxy.pref")
	text := fmt.Sprintf("# Installed by pgbapi-proxy, built for pg-backup-api %s: keeps apt on that\n"+
		"# version, so that an upgrade does not remove pgbapi-proxy.\n"+
		"Package: %s\nPin: version %s\nPin-Priority: 990\n", tr.Pin, pin.Package, tr.AptVersion)
	if err := os.WriteFile(pref, []byte(text), 0o644); err != nil {
		return err
	}
	abs, err := filepath.Abs(pref)
	if err != nil {
		return err
	}
	// Not a conffile in /etc/apt/preferences.d: conffiles stay after
	// `apt remove` and would hold pg-backup-api back with no
	// pgbapi-proxy installed. The deb ships it here; postinstall
	// copies it into place (so an upgrade built for a new pin brings
	// the new pin) and postremove deletes it on remove.
	contents, _ := cfg["contents"].([]any)
	cfg["contents"] = append(contents, map[string]any{
		"src": abs, "dst": AptPreferencesTemplate,
		"packager": "deb", "file_info": map[string]any{"mode": 0o644},
	})
	return nil
}

// writeConfig writes out/nfpm.yaml under a header naming where it came from.
func writeConfig(cfg map[string]any, in, out, pinSpec string) error {
	generated, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	header := fmt.Sprintf("# Generated from %s by packaging/nfpmconfig (pin %q); do not edit.\n", in, pinSpec)
	return os.WriteFile(filepath.Join(out, "nfpm.yaml"), append([]byte(header), generated...), 0o644)
}

// AptPreferencesTemplate is where the deb ships the apt pin that
// postinstall copies to /etc/apt/preferences.d/pgbapi-proxy.pref.
const AptPreferencesTemplate = "/usr/share/pgbapi-proxy/apt-preferences"

// versionedChangelog writes a copy of the changelog to out whose newest
// entry is the package's version: the release's own entry when the
// changelog has one, else a build entry on top (so that the deb's
// changelog.Debian and the rpm's %changelog name the version installed).
// The build entry is dated SOURCE_DATE_EPOCH when set (reproducible
// builds), else now.
func versionedChangelog(in, out, version, release string) (string, error) {
	data, err := os.ReadFile(in)
	if err != nil {
		return "", err
	}
	var entries []map[string]any
	if err := yaml.Unmarshal(data, &entries); err != nil {
		return "", fmt.Errorf("%s: %w", in, err)
	}
	if len(entries) == 0 || (entries[0]["semver"] != version && entries[0]["semver"] != version+"-"+release) {
		date := time.Now().UTC()
		if epoch, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
			date = time.Unix(epoch, 0).UTC()
		}
		entry := map[string]any{
			"semver": version + "-" + release, "date": date.Format(time.RFC3339),
			"packager": "pgbapi-proxy team <team@pgbapi-proxy.invalid>",
			"changes":  []any{map[string]any{"note": "Build " + version + "; changes since the last release: see the git history."}},
		}
		if len(entries) > 0 {
			entry["packager"] = entries[0]["packager"]
			entry["deb"] = entries[0]["deb"]
		}
		entries = append([]map[string]any{entry}, entries...)
	}
	generated, err := yaml.Marshal(entries)
	if err != nil {
		return "", err
	}
	path, err := filepath.Abs(filepath.Join(out, "changelog.yaml"))
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, generated, 0o644)
}

var semverish = regexp.MustCompile(`^v?([0-9]+(\.[0-9]+)+)(.*)$`)

// PackageVersion makes a version both packagers take from a git describe
// string: v1.2.3 -> 1.2.3; v1.2.3-4-gabc -> 1.2.3+git4.gabc; make's
// version without tags, 0.0.0+git<time>.<sha>, as it is; a bare commit
// abc123 -> 0.0.0+gitabc123. A '-' would split version and release.
func PackageVersion(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("no version: set VERSION, e.g. make deb VERSION=1.2.3")
	}
	clean := func(x string) string {
		return strings.Trim(regexp.MustCompile(`[^0-9A-Za-z.+~]+`).ReplaceAllString(x, "."), ".")
	}
	m := semverish.FindStringSubmatch(s)
	if m == nil {
		return "0.0.0+git" + clean(s), nil
	}
	rest := clean(m[3])
	if strings.HasPrefix(rest, "+") {
		// Already a package version with build metadata, as make gives
		// without tags (0.0.0+git<time>.<sha>): kept, so that it sorts.
		return m[1] + rest, nil
	}
	if rest != "" {
		return m[1] + "+git" + rest, nil
	}
	return m[1], nil
}
