package main

import (
	"context"
	"log/slog"

	"github.com/coreos/go-systemd/v22/daemon"
)

// notifyReady tells systemd (Type=notify, NOTIFY_SOCKET) that serve is
// ready: proxy.New has bound both listeners and loaded the first server
// certificate, so a client that connects now is served. When ctx ends
// (SIGTERM), it says STOPPING=1 while requests in flight finish. Outside
// systemd (no NOTIFY_SOCKET) it does nothing.
func notifyReady(ctx context.Context, log *slog.Logger) {
	sent, err := daemon.SdNotify(false, daemon.SdNotifyReady+"\nSTATUS=serving")
	if err != nil {
		log.Warn("could not tell systemd that serve is ready", "err", err)
		return
	}
	if !sent {
		return
	}
	go func() {
		<-ctx.Done()
		notifyStopping()
	}()
}

// notifyStopping tells systemd that serve is shutting down.
func notifyStopping() {
	daemon.SdNotify(false, daemon.SdNotifyStopping+"\nSTATUS=draining requests in flight") //nolint:errcheck // best effort while exiting
}
