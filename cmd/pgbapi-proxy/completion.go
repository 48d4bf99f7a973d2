package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/spf13/pflag"
)

// Completion for bash, zsh and fish, generated from the command table and
// each command's flags: the same source as --help and the man page.

var completionCommand = command{
	name:    "completion",
	summary: "print the completion script for bash, zsh or fish",
	args:    " bash|zsh|fish",
	about: `Prints the completion for pgbapi-proxy in the shell's language: commands,
their flags, and the values of flags that take one of a few (--key-type,
--log-format, --log-level), directories, files or users. The packages
install the bash one; by hand:
  bash:  source <(pgbapi-proxy completion bash)
  zsh:   pgbapi-proxy completion zsh > "${fpath[1]}/_pgbapi-proxy"
  fish:  pgbapi-proxy completion fish > ~/.config/fish/completions/pgbapi-proxy.fish`,
	setup: func(fs *pflag.FlagSet) runFunc {
		return func(ctx context.Context, sio *stdio, args []string) error {
			gen := map[string]func() string{"bash": bashCompletion, "zsh": zshCompletion, "fish": fishCompletion}
			if len(args) != 1 || gen[args[0]] == nil {
				return usagef("completion takes one argument: bash, zsh or fish")
			}
			fmt.Fprint(sio.out, gen[args[0]]())
			return nil
		}
	},
}

// What a flag's value is, for completion. Flags not named here take a
// value nothing can guess (a name, a number, an address) or none (bool).
var (
	flagValues = map[string][]string{
		"key-type":   keyTypeNames(),
		"log-format": {"text", "json"},
		"log-level":  {"debug", "info", "warn", "error"},
	}
	dirFlags  = []string{"tpa-dir", "state-dir", "out", "bundle-dir"}
	fileFlags = []string{"csr", "cert", "key", "ca-cert", "ca-key", "bundle", "access-file", "settings-file"}
	userFlags = []string{"owner", "service-user"}
	// argValues are a command's positional arguments that come from a list.
	argValues = map[string][]string{
		"completion":   {"bash", "zsh", "fish"},
		"check-access": {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"},
	}
)

func keyTypeNames() []string {
	out := make([]string, len(pki.KeyTypes))
	for i, k := range pki.KeyTypes {
		out[i] = string(k)
	}
	return out
}

// compFlag is one flag as the completions see it.
type compFlag struct {
	name, desc string
	value      string   // "" (none), "values", "dir", "file", "user", "any"
	values     []string // for "values"
	repeat     bool     // may be given more than once
}

type compCmd struct {
	name, summary string
	flags         []compFlag
	args          []string
}

func completionModel() []compCmd {
	var out []compCmd
	names := []string{}
	for _, c := range commands() {
		names = append(names, c.name)
	}
	for _, c := range commands() {
		cc := compCmd{name: c.name, summary: c.summary, args: argValues[c.name]}
		fs, _ := newFlagSet(c)
		fs.VisitAll(func(f *pflag.Flag) {
			if f.Deprecated != "" || f.Hidden {
				return
			}
			cf := compFlag{name: f.Name, desc: shortDesc(f.Usage), repeat: strings.HasSuffix(f.Value.Type(), "Slice")}
			switch {
			case f.NoOptDefVal != "": // bool flags
			case flagValues[f.Name] != nil:
				cf.value, cf.values = "values", flagValues[f.Name]
			case contains(dirFlags, f.Name):
				cf.value = "dir"
			case contains(fileFlags, f.Name):
				cf.value = "file"
			case contains(userFlags, f.Name):
				cf.value = "user"
			default:
				cf.value = "any"
			}
			cc.flags = append(cc.flags, cf)
		})
		sort.Slice(cc.flags, func(i, j int) bool { return cc.flags[i].name < cc.flags[j].name })
		out = append(out, cc)
	}
	out = append(out, compCmd{name: "help", summary: "show help for a command", args: names})
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// shortDesc is a flag's usage up to the first ':', ';' or '(': short, and
// free of what the shells' quoting would trip on.
func shortDesc(usage string) string {
	if i := strings.IndexAny(usage, ":;(["); i > 0 {
		usage = usage[:i]
	}
	return strings.TrimSpace(strings.NewReplacer("'", "", "`", "", "\\", "", "$", "").Replace(usage))
}

// bashCompletion is the bash completion script: the commands, then per
// command its flags and arguments, and per flag what its value is.
func bashCompletion() string {
	model := completionModel()
	cmds, cases := bashCommandCases(model)
	return fmt.Sprintf(bashTemplate, strings.Join(cmds, " "), bashValueCases(model), cases)
}

// bashCommandCases is the command names, and a case arm per command
// setting its flags and arguments.
func bashCommandCases(model []compCmd) ([]string, string) {
	var cmds []string
	var cases strings.Builder
	for _, c := range model {
		cmds = append(cmds, c.name)
		var flags []string
		for _, f := range c.flags {
			flags = append(flags, "--"+f.name)
		}
		fmt.Fprintf(&cases, "\t%s) flags=%q args=%q ;;\n", c.name, strings.Join(flags, " "), strings.Join(c.args, " "))
	}
	return cmds, cases.String()
}

// bashValueCases is the case arms on the previous word that complete a
// flag's value: its values, or directories, files, users, or nothing.
func bashValueCases(model []compCmd) string {
	byValue, values := bashFlagsByValue(model)
	var prev strings.Builder
	var valueFlags []string
	for f := range values {
		if values[f] != nil {
			valueFlags = append(valueFlags, f)
		}
	}
	sort.Strings(valueFlags)
	for _, f := range valueFlags {
		fmt.Fprintf(&prev, "\t%s) COMPREPLY=($(compgen -W %q -- \"$cur\")); return ;;\n", f, strings.Join(values[f], " "))
	}
	for _, kind := range []struct{ value, gen string }{{"dir", "compgen -d"}, {"file", "compgen -f"}, {"user", "compgen -u"}, {"any", ""}} {
		fl := byValue[kind.value]
		if len(fl) == 0 {
			continue
		}
		sort.Strings(fl)
		if kind.gen == "" {
			fmt.Fprintf(&prev, "\t%s) COMPREPLY=(); return ;;\n", strings.Join(fl, "|"))
		} else {
			fmt.Fprintf(&prev, "\t%s) COMPREPLY=($(%s -- \"$cur\")); return ;;\n", strings.Join(fl, "|"), kind.gen)
		}
	}
	return prev.String()
}

// bashFlagsByValue groups the flags that take a value by its kind (once
// each, as --name), and gives each its values (nil but for "values").
func bashFlagsByValue(model []compCmd) (byValue, values map[string][]string) {
	byValue, values = map[string][]string{}, map[string][]string{}
	for _, c := range model {
		for _, f := range c.flags {
			if f.value != "" && !contains(byValue[f.value], "--"+f.name) {
				byValue[f.value] = append(byValue[f.value], "--"+f.name)
				values["--"+f.name] = f.values
			}
		}
	}
	return byValue, values
}

// bashTemplate is the bash script; its blanks are the commands, the case
// arms on the previous word and those on the command.
const bashTemplate = `# bash completion for pgbapi-proxy; generated by 'pgbapi-proxy completion bash'.
_pgbapi_proxy() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} flags="" args=""
	if [ "$COMP_CWORD" -eq 1 ]; then
		COMPREPLY=($(compgen -W %q -- "$cur"))
		return
	fi
	case "$prev" in
%s	esac
	case "${COMP_WORDS[1]}" in
%s	esac
	case "$cur" in
	-*) COMPREPLY=($(compgen -W "$flags" -- "$cur")) ;;
	*)
		if [ -n "$args" ]; then
			COMPREPLY=($(compgen -W "$args" -- "$cur"))
		else
			COMPREPLY=($(compgen -f -- "$cur"))
		fi
		;;
	esac
}
complete -F _pgbapi_proxy pgbapi-proxy
`

// zshQuote makes s safe inside a single-quoted zsh word of an _arguments
// or _describe spec: no quotes, brackets or unescaped colons.
func zshQuote(s string) string {
	return strings.NewReplacer("'", "", "[", "(", "]", ")", ":", `\:`).Replace(s)
}

func zshCompletion() string {
	var b strings.Builder
	b.WriteString("#compdef pgbapi-proxy\n# zsh completion for pgbapi-proxy; generated by 'pgbapi-proxy completion zsh'.\n\n")
	b.WriteString("_pgbapi_proxy() {\n\tlocal -a commands\n\tcommands=(\n")
	model := completionModel()
	for _, c := range model {
		fmt.Fprintf(&b, "\t\t'%s:%s'\n", c.name, zshQuote(c.summary))
	}
	b.WriteString("\t)\n\tif (( CURRENT == 2 )); then\n\t\t_describe -t commands 'pgbapi-proxy command' commands\n\t\treturn\n\tfi\n")
	b.WriteString("\tlocal cmd=${words[2]}\n\tshift words\n\t(( CURRENT-- ))\n\tcase $cmd in\n")
	for _, c := range model {
		fmt.Fprintf(&b, "\t%s)\n\t\t_arguments -s \\\n", c.name)
		for _, f := range c.flags {
			spec := "--" + f.name
			if f.repeat {
				spec = "*" + spec
			}
			spec += "[" + zshQuote(f.desc) + "]"
			switch f.value {
			case "values":
				spec += ":" + f.name + ":(" + strings.Join(f.values, " ") + ")"
			case "dir":
				spec += ":directory:_files -/"
			case "file":
				spec += ":file:_files"
			case "user":
				spec += ":user:_users"
			case "any":
				spec += ":" + f.name + ": "
			}
			fmt.Fprintf(&b, "\t\t\t'%s' \\\n", spec)
		}
		if len(c.args) > 0 {
			fmt.Fprintf(&b, "\t\t\t'1:argument:(%s)' \\\n", strings.Join(c.args, " "))
		}
		b.WriteString("\t\t\t'*:file:_files'\n\t\t;;\n")
	}
	b.WriteString("\tesac\n}\n\n")
	b.WriteString("if [ \"$funcstack[1]\" = \"_pgbapi_proxy\" ]; then\n\t_pgbapi_proxy \"$@\"\nelse\n\tcompdef _pgbapi_proxy pgbapi-proxy\nfi\n")
	return b.String()
}

// fishQuote single-quotes s for fish.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}

func fishCompletion() string {
	var b strings.Builder
	b.WriteString("# fish completion for pgbapi-proxy; generated by 'pgbapi-proxy completion fish'.\n")
	b.WriteString("complete -c pgbapi-proxy -f\n")
	model := completionModel()
	var names []string
	for _, c := range model {
		names = append(names, c.name)
	}
	for _, c := range model {
		fmt.Fprintf(&b, "complete -c pgbapi-proxy -n '__fish_use_subcommand' -a %s -d %s\n", c.name, fishQuote(c.summary))
	}
	for _, c := range model {
		cond := fishQuote("__fish_seen_subcommand_from " + c.name)
		for _, f := range c.flags {
			line := fmt.Sprintf("complete -c pgbapi-proxy -n %s -l %s -d %s", cond, f.name, fishQuote(f.desc))
			switch f.value {
			case "values":
				line += " -x -a " + fishQuote(strings.Join(f.values, " "))
			case "dir":
				line += " -x -a '(__fish_complete_directories)'"
			case "file":
				line += " -r -F"
			case "user":
				line += " -x -a '(__fish_complete_users)'"
			case "any":
				line += " -x"
			}
			b.WriteString(line + "\n")
		}
		if len(c.args) > 0 {
			fmt.Fprintf(&b, "complete -c pgbapi-proxy -n %s -a %s\n", cond, fishQuote(strings.Join(c.args, " ")))
		}
	}
	return b.String()
}
