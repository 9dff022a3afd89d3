// Package fleete2e holds the end-to-end tests of a fleet: the real rollout
// binary restarts services on three hosts made with internal/fakehost (real
// sshd, real private systemd managers, a private /srv each) over real ssh.
// They are a package of their own so that their minutes do not count
// against cmd/rollout's test timeout.
package fleete2e
