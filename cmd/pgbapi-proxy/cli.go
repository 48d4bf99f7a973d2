package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

const prog = "pgbapi-proxy"

// envPrefix is how every flag can also be set from the environment:
// --state-dir is PGBAPI_PROXY_STATE_DIR.
const envPrefix = "PGBAPI_PROXY_"

// command is one subcommand. setup declares its flags on fs and returns the
// function that runs it once the flags are parsed.
type command struct {
	name    string
	summary string
	args    string // what follows the name in the usage line
	about   string // longer description for --help
	setup   func(fs *pflag.FlagSet) runFunc
}

type runFunc func(ctx context.Context, io *stdio, args []string) error

type stdio struct {
	out, err io.Writer
}

// commandTable is the table run dispatches from, in the order help lists
// it. It is filled in init because manpage and completion read it.
var commandTable []command

func init() {
	commandTable = []command{
		initCommand, issueClientCommand, listCommand, showCommand, revokeCommand,
		serveCommand, statusCommand, checkAccessCommand, doctorCommand,
		syncServerCertCommand, versionCommand, manpageCommand, completionCommand,
	}
}

func commands() []command { return commandTable }

// usageError is a mistake in how the command was called: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// run executes one command line and returns the exit status: 0 on
// success, 1 on failure, 2 on a usage error. Errors are one line on stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sio := &stdio{out: stdout, err: stderr}
	err := dispatch(ctx, sio, args)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "%s: %s\n", prog, oneLine(err.Error()))
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func dispatch(ctx context.Context, sio *stdio, args []string) error {
	if len(args) == 0 {
		return usagef("no command given; run '%s help' for the list of commands", prog)
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "--help":
		if len(rest) == 0 || rest[0] == "-h" || rest[0] == "--help" || rest[0] == "help" {
			fmt.Fprint(sio.out, mainUsage())
			return nil
		}
		cmd, ok := lookup(rest[0])
		if !ok {
			return usagef("unknown command %q; see '%s help'", rest[0], prog)
		}
		fs, _ := newFlagSet(cmd)
		fmt.Fprint(sio.out, commandUsage(cmd, fs))
		return nil
	case "--version", "-V":
		name = "version"
	}
	cmd, ok := lookup(name)
	if !ok {
		return usagef("unknown command %q; see '%s help'", name, prog)
	}
	fs, runner := newFlagSet(cmd)
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(sio.out, commandUsage(cmd, fs))
			return nil
		}
		return usagef("%s: %v; see '%s %s --help'", cmd.name, err, prog, cmd.name)
	}
	if err := applyEnv(fs, os.LookupEnv); err != nil {
		return err
	}
	warnDeprecated(sio, fs)
	return runner(ctx, sio, fs.Args())
}

func lookup(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func newFlagSet(cmd command) (*pflag.FlagSet, runFunc) {
	fs := pflag.NewFlagSet(cmd.name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors and usage are printed by dispatch
	fs.Usage = func() {}
	fs.SortFlags = false
	runner := cmd.setup(fs)
	return fs, runner
}

// envName is the environment variable that sets flag name.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyEnv sets every flag not given on the command line from its
// environment variable, if set. List flags take comma-separated values.
func applyEnv(fs *pflag.FlagSet, getenv func(string) (string, bool)) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == "help" {
			return
		}
		if a, ok := f.Value.(*aliasValue); ok && a.target.Changed {
			return // the new name was given: the old one's variable must not override it
		}
		v, ok := getenv(envName(f.Name))
		if !ok {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = usagef("%s=%q: %v", envName(f.Name), v, serr)
		}
	})
	return err
}

// aliasValue makes a deprecated flag name set another flag: both names
// are one setting. Setting the alias marks the target given, so that the
// target's environment variable does not override the command line.
type aliasValue struct{ target *pflag.Flag }

func (a *aliasValue) String() string { return a.target.Value.String() }
func (a *aliasValue) Type() string   { return a.target.Value.Type() }
func (a *aliasValue) Set(s string) error {
	if err := a.target.Value.Set(s); err != nil {
		return err
	}
	a.target.Changed = true
	return nil
}

// deprecatedAlias declares --old as a hidden, deprecated name of --target
// (already declared), so that old scripts and settings files keep working.
func deprecatedAlias(fs *pflag.FlagSet, old, target string) {
	t := fs.Lookup(target)
	fs.Var(&aliasValue{target: t}, old, "deprecated name of --"+target)
	_ = fs.MarkDeprecated(old, "use --"+target)
}

// warnDeprecated says on stderr which deprecated flag names were used
// (on the command line or in the environment), and what replaces them.
func warnDeprecated(sio *stdio, fs *pflag.FlagSet) {
	fs.Visit(func(f *pflag.Flag) {
		if f.Deprecated != "" {
			fmt.Fprintf(sio.err, "%s: warning: --%s (%s) is deprecated: %s\n", prog, f.Name, envName(f.Name), f.Deprecated)
		}
	})
}

func mainUsage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s puts pg-backup-api behind TLS with mandatory client certificates\nand issues the cluster PKI for it.\n\n", prog)
	fmt.Fprintf(&b, "Usage: %s COMMAND [flags]\n\nCommands:\n", prog)
	cmds := commands()
	width := len("help")
	for _, c := range cmds {
		width = max(width, len(c.name))
	}
	for _, c := range cmds {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, c.name, c.summary)
	}
	fmt.Fprintf(&b, "  %-*s  %s\n", width, "help", "show help for a command")
	fmt.Fprintf(&b, "\nRun '%s COMMAND --help' for a command's flags. Every flag can also be\nset in the environment as %s<FLAG> (e.g. %s); the\ncommand line wins.\n", prog, envPrefix, envName("state-dir"))
	return b.String()
}

func commandUsage(cmd command, fs *pflag.FlagSet) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s %s [flags]%s\n\n%s\n", prog, cmd.name, cmd.args, strings.TrimSpace(cmd.about))
	if fs.HasFlags() {
		fmt.Fprintf(&b, "\nFlags:\n%s", fs.FlagUsages())
		example := "state-dir"
		if fs.Lookup(example) == nil {
			fs.VisitAll(func(f *pflag.Flag) {
				if example == "state-dir" && f.Name != "help" && f.Name != "json" {
					example = f.Name
				}
			})
		}
		fmt.Fprintf(&b, "\nEvery flag can also be set as %s<FLAG>, e.g. --%s as %s.\n", envPrefix, example, envName(example))
	}
	return b.String()
}

// oneLine keeps an error message on one line.
func oneLine(s string) string {
	return strings.TrimSpace(strings.NewReplacer("\r\n", " ", "\n", " ").Replace(s))
}

// noArgs refuses positional arguments for commands that take none.
func noArgs(cmd string, args []string) error {
	if len(args) > 0 {
		if (cmd == "revoke" || cmd == "issue-client") && !strings.HasPrefix(args[0], "-") {
			return usagef("%s takes no arguments (got %q); did you mean --name %s? see '%s %s --help'", cmd, args[0], args[0], prog, cmd)
		}
		return usagef("%s takes no arguments (got %q); see '%s %s --help'", cmd, args[0], prog, cmd)
	}
	return nil
}
