package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/pflag"
)

// version is set at build time: -ldflags "-X main.version=1.2.3".
var version = ""

var versionCommand = command{
	name:    "version",
	summary: "print the version",
	about:   "Prints the version of pgbapi-proxy and the Go it was built with.",
	setup: func(fs *pflag.FlagSet) runFunc {
		return func(ctx context.Context, sio *stdio, args []string) error {
			if err := noArgs("version", args); err != nil {
				return err
			}
			fmt.Fprintf(sio.out, "%s %s (%s, %s/%s)\n", prog, versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		}
	},
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
