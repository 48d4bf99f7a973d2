package main

import (
	"fmt"
	"os/user"
	"strconv"
	"strings"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/spf13/pflag"
)

// layoutFlags declares --tpa-dir and --state-dir, shared by every command
// that works on the PKI.
func layoutFlags(fs *pflag.FlagSet) *pki.Layout {
	l := &pki.Layout{}
	fs.StringVar(&l.TPADir, "tpa-dir", pki.DefaultTPADir, "directory of the certificates operators use (root.crt, pg-backup-api.crt, client pairs)")
	fs.StringVar(&l.StateDir, "state-dir", pki.DefaultStateDir, "directory of the CA key, the intermediate and the inventory (root only)")
	return l
}

func keyTypeUsage() string {
	names := make([]string, len(pki.KeyTypes))
	for i, k := range pki.KeyTypes {
		names[i] = string(k)
	}
	return "key type: " + strings.Join(names, ", ")
}

// parseOwner turns USER[:GROUP] (names or numbers) into a uid and gid. Without
// a group, the user's primary group is used.
func parseOwner(spec string) (*pki.Owner, error) {
	if spec == "" {
		return nil, nil
	}
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" {
		return nil, usagef("--owner %q: give USER or USER:GROUP", spec)
	}
	u, err := lookupUser(userPart)
	if err != nil {
		return nil, err
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("user %q has a non-numeric uid %q", userPart, u.Uid)
	}
	gidStr := u.Gid
	if hasGroup && groupPart != "" {
		g, err := lookupGroup(groupPart)
		if err != nil {
			return nil, err
		}
		gidStr = g.Gid
	}
	gid, err := strconv.Atoi(gidStr)
	if err != nil {
		return nil, fmt.Errorf("group of %q has a non-numeric gid %q", spec, gidStr)
	}
	own := &pki.Owner{UID: uid, GID: gid}
	// Supplementary groups, for the check that the owner can reach its files.
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if n, err := strconv.Atoi(id); err == nil && n != gid {
				own.Groups = append(own.Groups, n)
			}
		}
	}
	return own, nil
}

func lookupUser(s string) (*user.User, error) {
	u, err := user.Lookup(s)
	if err == nil {
		return u, nil
	}
	if _, nerr := strconv.Atoi(s); nerr == nil {
		if u, err := user.LookupId(s); err == nil {
			return u, nil
		}
		return &user.User{Uid: s, Gid: s}, nil
	}
	return nil, usagef("--owner: no user %q on this host", s)
}

func lookupGroup(s string) (*user.Group, error) {
	g, err := user.LookupGroup(s)
	if err == nil {
		return g, nil
	}
	if _, nerr := strconv.Atoi(s); nerr == nil {
		return &user.Group{Gid: s}, nil
	}
	return nil, usagef("--owner: no group %q on this host", s)
}
