package steps

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"

	"github.com/rollout-sh/rollout/executor"
	"github.com/rollout-sh/rollout/internal/busdial"
	"github.com/rollout-sh/rollout/internal/systemdapi"
)

// The systemd contract lives in internal/systemdapi so that the test
// double can implement it without importing steps; these names keep it
// part of the steps API.
type (
	Op          = systemdapi.Op
	UnitState   = systemdapi.UnitState
	Backend     = systemdapi.Backend
	JobError    = systemdapi.JobError
	OpError     = systemdapi.OpError
	Field       = systemdapi.Field
	FieldReader = systemdapi.FieldReader
)

// The properties of UnitState, for StatusOf.
const (
	FieldLoadState        = systemdapi.FieldLoadState
	FieldActiveState      = systemdapi.FieldActiveState
	FieldSubState         = systemdapi.FieldSubState
	FieldFragmentPath     = systemdapi.FieldFragmentPath
	FieldCanReload        = systemdapi.FieldCanReload
	FieldNeedDaemonReload = systemdapi.FieldNeedDaemonReload
	FieldActiveEnterMono  = systemdapi.FieldActiveEnterMono
	FieldInvocationID     = systemdapi.FieldInvocationID
	FieldDropInPaths      = systemdapi.FieldDropInPaths
	FieldResult           = systemdapi.FieldResult
	FieldReloadResult     = systemdapi.FieldReloadResult
	FieldMainPID          = systemdapi.FieldMainPID
	FieldNRestarts        = systemdapi.FieldNRestarts
	FieldStateChangeTime  = systemdapi.FieldStateChangeTime
	AllFields             = systemdapi.AllFields
)

// The jobs a Backend runs.
const (
	OpStart           = systemdapi.OpStart
	OpStop            = systemdapi.OpStop
	OpRestart         = systemdapi.OpRestart
	OpReload          = systemdapi.OpReload
	OpReloadOrRestart = systemdapi.OpReloadOrRestart
)

// Errors a Backend wraps so that callers can use errors.Is; see
// internal/systemdapi for what each means.
var (
	ErrNoSuchUnit     = systemdapi.ErrNoSuchUnit
	ErrNotApplicable  = systemdapi.ErrNotApplicable
	ErrConnectionLost = systemdapi.ErrConnectionLost
	ErrJobTimeout     = systemdapi.ErrJobTimeout
)

// classify wraps D-Bus errors from systemd with our sentinels.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var de dbus.Error
	if errors.As(err, &de) {
		switch de.Name {
		case "org.freedesktop.systemd1.NoSuchUnit":
			return &systemdapi.CallError{Kind: ErrNoSuchUnit, Err: err}
		case "org.freedesktop.systemd1.JobTypeNotApplicable":
			return &systemdapi.CallError{Kind: ErrNotApplicable, Err: err}
		}
	}
	if errors.Is(err, dbus.ErrClosed) {
		return &systemdapi.CallError{Kind: ErrConnectionLost, Err: err}
	}
	return err
}

// ConnectOptions choose the manager and the time limits.
type ConnectOptions struct {
	// User talks to the user manager ($DBUS_SESSION_BUS_ADDRESS, else
	// /run/user/UID/bus) instead of the system manager.
	User bool
	// Address, when set, is dialled instead: a bus ("unix:path=.../bus")
	// or systemd's private socket ("unix:path=.../systemd/private", a
	// direct connection without a bus daemon, recognised by its path).
	Address string
	// Dial, when set, makes the connections instead (a remote manager
	// through ssh and systemd-stdio-bridge); Describe then names it.
	Dial     func(ctx context.Context) (*dbus.Conn, error)
	Describe string
	// CallTimeout bounds each D-Bus call and the dial (default 30s).
	CallTimeout time.Duration
	// JobTimeout bounds the wait for a job's result (default 5m).
	JobTimeout time.Duration
}

// DBus is the Backend on go-systemd's D-Bus API. It is safe for
// concurrent use. A dropped connection (bus daemon restarted, daemon-reexec)
// is redialled once on the next call; see ErrConnectionLost for jobs.
type DBus struct {
	ctx  context.Context
	opts ConnectOptions

	mu   sync.Mutex
	conn *dbusConn // nil after Close

	// reloadMu serializes daemon-reloads: parallel steps that each wrote
	// a unit file would otherwise queue reloads that systemd runs one
	// after the other anyway, each 30+ ms with the manager busy.
	reloadMu sync.Mutex
}

// dbusConn is a go-systemd connection with the godbus connections under
// it, whose contexts tell when it drops.
type dbusConn struct {
	sd   *sdbus.Conn
	raw  []*dbus.Conn
	done chan struct{} // closed when any underlying connection is gone
}

// watch closes c.done when either godbus connection ends: one goroutine
// per connection, gone with it.
func (c *dbusConn) watch() {
	c.done = make(chan struct{})
	go func() {
		select {
		case <-c.raw[0].Context().Done():
		case <-c.raw[1].Context().Done():
		}
		close(c.done)
	}()
}

func (c *dbusConn) connected() bool {
	return c.sd.Connected() && c.raw[0].Connected() && c.raw[1].Connected()
}

// Connect dials the manager. ctx owns the connection for the backend's
// whole life (go-systemd ties the connection to it): pass a long-lived
// one, not a per-call deadline; cancelling it closes the backend.
func Connect(ctx context.Context, opts ConnectOptions) (*DBus, error) {
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 30 * time.Second
	}
	if opts.JobTimeout <= 0 {
		opts.JobTimeout = 5 * time.Minute
	}
	d := &DBus{ctx: ctx, opts: opts}
	conn, err := d.dial()
	if err != nil {
		return nil, err
	}
	d.conn = conn
	return d, nil
}

// dial connects with a deadline: godbus's Dial, Auth and Hello take no
// context, so a bus that accepts but never answers would hang forever.
func (d *DBus) dial() (*dbusConn, error) {
	type result struct {
		conn *dbusConn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		c := &dbusConn{}
		// go-systemd dials its two connections one after the other;
		// both are dialled at once here, since over ssh each is a
		// session of its own with its own round trips and remote shell.
		type dialed struct {
			conn *dbus.Conn
			err  error
		}
		var pre [2]chan dialed
		for i := range pre {
			pre[i] = make(chan dialed, 1)
			go func() {
				conn, err := d.dialRaw()
				pre[i] <- dialed{conn, err}
			}()
		}
		used := 0
		sd, err := sdbus.NewConnection(func() (*dbus.Conn, error) {
			var r dialed
			if used < len(pre) {
				r = <-pre[used]
				used++
			} else {
				r.conn, r.err = d.dialRaw()
			}
			if r.err == nil {
				c.raw = append(c.raw, r.conn)
			}
			return r.conn, r.err
		})
		// A connection dialled ahead that go-systemd did not take (it
		// failed on the first) is closed, not leaked.
		for ; used < len(pre); used++ {
			if r := <-pre[used]; r.err == nil {
				r.conn.Close()
			}
		}
		c.sd = sd
		ch <- result{c, err}
	}()
	timer := time.NewTimer(d.opts.CallTimeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("connecting to %s: %w", d.describe(), r.err)
		}
		if len(r.conn.raw) != 2 {
			r.conn.sd.Close()
			return nil, fmt.Errorf("connecting to %s: go-systemd dialled %d connections, want 2", d.describe(), len(r.conn.raw))
		}
		r.conn.watch()
		return r.conn, nil
	case <-timer.C:
		go func() {
			// Close whatever the stuck dial eventually returns.
			if r := <-ch; r.err == nil {
				r.conn.sd.Close()
			}
		}()
		return nil, fmt.Errorf("connecting to %s: no answer within %s", d.describe(), d.opts.CallTimeout)
	case <-d.ctx.Done():
		go func() {
			if r := <-ch; r.err == nil {
				r.conn.sd.Close()
			}
		}()
		return nil, fmt.Errorf("connecting to %s: %w", d.describe(), d.ctx.Err())
	}
}

func (d *DBus) describe() string {
	switch {
	case d.opts.Describe != "":
		return d.opts.Describe
	case d.opts.Address != "":
		return fmt.Sprintf("systemd at %q", d.opts.Address)
	case d.opts.User:
		return "the systemd user manager"
	default:
		return "the systemd system manager"
	}
}

// dialRaw makes one authenticated godbus connection, as go-systemd's own
// constructors do: EXTERNAL auth with the numeric uid, then Hello unless
// the address is systemd's private socket (no bus daemon to greet).
func (d *DBus) dialRaw() (*dbus.Conn, error) {
	if d.opts.Dial != nil {
		return d.opts.Dial(d.ctx)
	}
	if d.opts.Address != "" {
		return busdial.Dial(d.ctx, d.opts.Address)
	}
	var (
		conn *dbus.Conn
		err  error
	)
	if d.opts.User {
		conn, err = dbus.SessionBusPrivate(dbus.WithContext(d.ctx))
	} else {
		conn, err = dbus.SystemBusPrivate(dbus.WithContext(d.ctx))
	}
	if err != nil {
		return nil, err
	}
	return busdial.Setup(conn, false)
}

// connection returns a live connection, redialling once if the current
// one has dropped. The old one is closed first so nothing leaks.
func (d *DBus) connection() (*dbusConn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn == nil {
		return nil, errors.New("systemd backend is closed")
	}
	if err := d.ctx.Err(); err != nil {
		return nil, fmt.Errorf("systemd backend's context ended: %w", err)
	}
	if d.conn.connected() {
		return d.conn, nil
	}
	return d.redialLocked()
}

// reconnect replaces old after a call on it failed with a closed
// connection; another goroutine may have replaced it already.
func (d *DBus) reconnect(old *dbusConn) (*dbusConn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn == nil {
		return nil, errors.New("systemd backend is closed")
	}
	if d.conn != old && d.conn.connected() {
		return d.conn, nil
	}
	return d.redialLocked()
}

func (d *DBus) redialLocked() (*dbusConn, error) {
	d.conn.sd.Close()
	conn, err := d.dial()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConnectionLost, err)
	}
	d.conn = conn
	return conn, nil
}

func lostConnection(c *dbusConn, err error) bool {
	return errors.Is(err, dbus.ErrClosed) || !c.connected()
}

// readOnly runs call, and once more on a fresh connection when the
// connection was lost: only for calls that are safe to repeat.
func (d *DBus) readOnly(ctx context.Context, call func(ctx context.Context, c *sdbus.Conn) error) error {
	conn, err := d.connection()
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, d.opts.CallTimeout)
	err = call(cctx, conn.sd)
	cancel()
	if err == nil || !lostConnection(conn, err) || ctx.Err() != nil {
		return err
	}
	conn, rerr := d.reconnect(conn)
	if rerr != nil {
		return rerr
	}
	cctx, cancel = context.WithTimeout(ctx, d.opts.CallTimeout)
	defer cancel()
	return call(cctx, conn.sd)
}

// readOnlyConn is readOnly for calls that need the godbus connection
// under go-systemd's.
func (d *DBus) readOnlyConn(ctx context.Context, call func(ctx context.Context, c *dbusConn) error) error {
	conn, err := d.connection()
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, d.opts.CallTimeout)
	err = call(cctx, conn)
	cancel()
	if err == nil || !lostConnection(conn, err) || ctx.Err() != nil {
		return err
	}
	conn, rerr := d.reconnect(conn)
	if rerr != nil {
		return rerr
	}
	cctx, cancel = context.WithTimeout(ctx, d.opts.CallTimeout)
	defer cancel()
	return call(cctx, conn)
}

// DaemonReload reloads systemd's unit files (systemctl daemon-reload);
// systemd replies once the reload is complete.
func (d *DBus) DaemonReload(ctx context.Context) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	err := d.readOnly(ctx, func(ctx context.Context, c *sdbus.Conn) error {
		return c.ReloadContext(ctx)
	})
	if err != nil {
		return fmt.Errorf("daemon-reload: %w", classify(err))
	}
	return nil
}

// Reset clears the unit's failed state (systemctl reset-failed), so that a
// start after a failure is not refused by the start rate limit.
func (d *DBus) Reset(ctx context.Context, unit string) error {
	err := d.readOnly(ctx, func(ctx context.Context, c *sdbus.Conn) error {
		return c.ResetFailedUnitContext(ctx, unit)
	})
	if err != nil {
		return fmt.Errorf("reset-failed %s: %w", unit, classify(err))
	}
	return nil
}

type jobMethod func(c *sdbus.Conn, ctx context.Context, name, mode string, ch chan<- string) (int, error)

func jobFor(op Op) (jobMethod, bool) {
	switch op {
	case OpStart:
		return (*sdbus.Conn).StartUnitContext, true
	case OpStop:
		return (*sdbus.Conn).StopUnitContext, true
	case OpRestart:
		return (*sdbus.Conn).RestartUnitContext, true
	case OpReload:
		return (*sdbus.Conn).ReloadUnitContext, true
	case OpReloadOrRestart:
		return (*sdbus.Conn).ReloadOrRestartUnitContext, true
	}
	return nil, false
}

// Do enqueues op on unit in mode "replace" and waits for the job's result,
// at most JobTimeout. A result other than "done" is a *JobError. Errors
// wrap ErrNoSuchUnit, ErrNotApplicable, ErrJobTimeout or ErrConnectionLost.
//
// Jobs are never retried: when the connection drops after the job was
// sent, Do returns ErrConnectionLost and the caller decides from a fresh
// Status (InvocationID changed = the restart happened). A connection found
// dropped before sending is redialled first, since nothing was sent yet.
func (d *DBus) Do(ctx context.Context, op Op, unit string) error {
	err := d.do(ctx, op, unit)
	var jobErr *JobError
	if err == nil || errors.As(err, &jobErr) {
		return err
	}
	return &systemdapi.OpError{Op: op, Unit: unit, Err: err}
}

// do is Do; its errors other than a *JobError leave op and unit to Do.
func (d *DBus) do(ctx context.Context, op Op, unit string) error {
	method, ok := jobFor(op)
	if !ok {
		return fmt.Errorf("unknown systemd operation %q", op)
	}
	conn, err := d.connection()
	if err != nil {
		return err
	}
	// Buffered: go-systemd sends the result while holding its job lock on
	// its only dispatch goroutine, so an unread unbuffered channel would
	// stall every later job (go-systemd#429).
	ch := make(chan string, 1)
	// The manager runs jobs in the order they arrive, and go-systemd
	// sends one job request at a time: services started together send
	// theirs in the scheduler's order (executor.WaitTurn).
	turnDone := executor.WaitTurn(ctx)
	cctx, cancel := context.WithTimeout(ctx, d.opts.CallTimeout)
	_, err = method(conn.sd, cctx, unit, "replace", ch)
	cancel()
	turnDone()
	if err != nil {
		// No job was enqueued, so nothing will arrive on ch (runc#1772).
		if lostConnection(conn, err) {
			return &systemdapi.CallError{Kind: ErrConnectionLost, Err: err}
		}
		return classify(err)
	}

	// The call's ctx only bounded the enqueue; the job runs on in
	// systemd whatever we do, so wait with our own deadline.
	timer := time.NewTimer(d.opts.JobTimeout)
	defer timer.Stop()
	select {
	case result := <-ch:
		if result != "done" {
			return &JobError{Op: op, Unit: unit, Result: result}
		}
		return nil
	case <-conn.done:
		// The result may have raced the drop.
		select {
		case result := <-ch:
			if result != "done" {
				return &JobError{Op: op, Unit: unit, Result: result}
			}
			return nil
		default:
		}
		return fmt.Errorf("%w while waiting for the job's result", ErrConnectionLost)
	case <-timer.C:
		return fmt.Errorf("%w: no result after %s (the job may still be running)", ErrJobTimeout, d.opts.JobTimeout)
	case <-ctx.Done():
		return fmt.Errorf("%w (the job may still be running)", ctx.Err())
	}
}

// Status reads the unit's properties, and its service properties for a
// .service. A unit systemd does not know is not an error: its LoadState
// is "not-found"; check it with UnitState.Loaded.
func (d *DBus) Status(ctx context.Context, unit string) (UnitState, error) {
	return d.StatusOf(ctx, unit, AllFields)
}

// StatusOf is Status reading only the properties in fields (LoadState is
// always read); the others are left zero.
//
// Each property is one Properties.Get, all sent before the first reply
// is awaited: the single-threaded manager marshals the few values a
// caller needs instead of the ~300 of GetAll(Unit) and GetAll(Service),
// and the calls share one round trip's wait (BenchmarkDBusStatus).
func (d *DBus) StatusOf(ctx context.Context, unit string, fields Field) (UnitState, error) {
	var st UnitState
	err := d.readOnlyConn(ctx, func(ctx context.Context, c *dbusConn) error {
		var err error
		st, err = readState(ctx, c.raw[0], unit, fields|FieldLoadState)
		return err
	})
	if err != nil {
		return UnitState{}, fmt.Errorf("status %s: %w", unit, classify(err))
	}
	return st, nil
}

// statusOf reads at least fields of unit: only those where sd is a
// FieldReader, everything otherwise.
func statusOf(ctx context.Context, sd Backend, unit string, fields Field) (UnitState, error) {
	if r, ok := sd.(FieldReader); ok {
		return r.StatusOf(ctx, unit, fields)
	}
	return sd.Status(ctx, unit)
}

const (
	unitInterface    = "org.freedesktop.systemd1.Unit"
	serviceInterface = "org.freedesktop.systemd1.Service"
)

// stateProps are the properties UnitState holds, by interface.
var stateProps = [...]struct {
	field       Field
	iface, name string
}{
	{FieldLoadState, unitInterface, "LoadState"},
	{FieldActiveState, unitInterface, "ActiveState"},
	{FieldSubState, unitInterface, "SubState"},
	{FieldFragmentPath, unitInterface, "FragmentPath"},
	{FieldCanReload, unitInterface, "CanReload"},
	{FieldNeedDaemonReload, unitInterface, "NeedDaemonReload"},
	{FieldActiveEnterMono, unitInterface, "ActiveEnterTimestampMonotonic"},
	{FieldInvocationID, unitInterface, "InvocationID"},
	{FieldDropInPaths, unitInterface, "DropInPaths"},
	{FieldResult, serviceInterface, "Result"},
	{FieldReloadResult, serviceInterface, "ReloadResult"},
	{FieldMainPID, serviceInterface, "MainPID"},
	{FieldNRestarts, serviceInterface, "NRestarts"},
	{FieldStateChangeTime, unitInterface, "StateChangeTimestamp"},
}

// readState pipelines one Properties.Get per property of stateProps in
// fields on conn (go-systemd's call connection, the first it dialled).
// The Service properties are only asked of a .service: a unit that is not
// loaded has no Service interface, and those answers are then ignored, as
// they would be absent from GetAll(Service).
func readState(ctx context.Context, conn *dbus.Conn, unit string, fields Field) (UnitState, error) {
	path := dbus.ObjectPath("/org/freedesktop/systemd1/unit/" + sdbus.PathBusEscape(unit))
	if !path.IsValid() {
		return UnitState{}, fmt.Errorf("invalid unit name: %q", unit)
	}
	obj := conn.Object("org.freedesktop.systemd1", path)
	isService := strings.HasSuffix(unit, ".service")
	var calls [len(stateProps)]*dbus.Call
	for i, p := range stateProps {
		if fields&p.field == 0 || (p.iface == serviceInterface && !isService) {
			continue
		}
		calls[i] = obj.GoWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0, make(chan *dbus.Call, 1), p.iface, p.name)
	}
	props := make(map[string]any, len(stateProps))
	var unitErr, svcErr error
	for i, p := range stateProps {
		call := calls[i]
		if call == nil {
			continue
		}
		<-call.Done
		var v dbus.Variant
		err := call.Err
		if err == nil {
			err = call.Store(&v)
		}
		switch {
		case err == nil:
			props[p.name] = v.Value()
		case p.iface == unitInterface && unitErr == nil:
			unitErr = err
		case p.iface == serviceInterface && svcErr == nil && p.name != "ReloadResult":
			// ReloadResult is absent before systemd 250.
			svcErr = err
		}
	}
	if unitErr != nil {
		return UnitState{}, unitErr
	}
	st := unitStateFrom(props)
	if st.LoadState != "loaded" || !isService {
		return st, nil
	}
	if svcErr != nil {
		return UnitState{}, svcErr
	}
	addServiceState(&st, props)
	return st, nil
}

func unitStateFrom(p map[string]any) UnitState {
	st := UnitState{
		LoadState:        propString(p, "LoadState"),
		ActiveState:      propString(p, "ActiveState"),
		SubState:         propString(p, "SubState"),
		FragmentPath:     propString(p, "FragmentPath"),
		CanReload:        propBool(p, "CanReload"),
		NeedDaemonReload: propBool(p, "NeedDaemonReload"),
	}
	if v, ok := p["ActiveEnterTimestampMonotonic"].(uint64); ok {
		st.ActiveEnterMono = v
	}
	st.StateChangeTime = stateChangeTime(p)
	if v, ok := p["InvocationID"].([]byte); ok {
		st.InvocationID = hex.EncodeToString(v)
	}
	if v, ok := p["DropInPaths"].([]string); ok {
		st.DropInPaths = v
	}
	return st
}

func addServiceState(st *UnitState, p map[string]any) {
	st.Result = propString(p, "Result")
	st.ReloadResult = propString(p, "ReloadResult") // absent before systemd 250
	if v, ok := p["MainPID"].(uint32); ok {
		st.MainPID = v
	}
	if v, ok := p["NRestarts"].(uint32); ok {
		st.NRestarts = v
	}
}

func propString(p map[string]any, name string) string {
	s, _ := p[name].(string)
	return s
}

func propBool(p map[string]any, name string) bool {
	b, _ := p[name].(bool)
	return b
}

// Close closes the connection; later calls fail.
func (d *DBus) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != nil {
		d.conn.sd.Close()
		d.conn = nil
	}
	return nil
}
