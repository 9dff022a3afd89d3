// Package busdial makes authenticated godbus connections to systemd, for
// the systemd backend (steps) and the private manager (usermanager) alike.
package busdial

import (
	"context"
	"os"
	"strconv"
	"strings"

	"github.com/godbus/dbus/v5"
)

// Setup authenticates conn as go-systemd's own constructors do: EXTERNAL
// auth with the numeric uid, then Hello unless direct (systemd's private
// socket has no bus daemon to greet). It closes conn on failure.
func Setup(conn *dbus.Conn, direct bool) (*dbus.Conn, error) {
	if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		conn.Close()
		return nil, err
	}
	if !direct {
		if err := conn.Hello(); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return conn, nil
}

// IsPrivateSocket says whether address is systemd's private socket
// ($XDG_RUNTIME_DIR/systemd/private), which takes no Hello.
func IsPrivateSocket(address string) bool {
	return strings.HasSuffix(address, "/systemd/private")
}

// Dial connects to address and authenticates; ctx owns the connection.
func Dial(ctx context.Context, address string) (*dbus.Conn, error) {
	conn, err := dbus.Dial(address, dbus.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	return Setup(conn, IsPrivateSocket(address))
}
