package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/subgate/subgate/codec"
)

// Call is one request or notification on its way to a method. It is
// valid until the handler returns: the connection reuses it for its next
// call, so a handler or middleware that needs a field later copies it.
type Call struct {
	Method string
	// Params are the raw params in the connection's encoding; Bind decodes
	// them. They alias the frame until the handler returns.
	Params []byte
	Codec  codec.Codec
	// Notification is true when no reply is sent.
	Notification bool
}

// Bind decodes the params into v with the call's codec.
func (c *Call) Bind(v any) error { return c.Codec.Unmarshal(c.Params, v) }

// Handler answers a call with a result value (encoded by the connection's
// codec) or an error (a *codec.Error reaches the client as it is; any other
// error becomes -32603 Internal error).
type Handler func(ctx context.Context, call *Call) (any, error)

// Middleware wraps every call.
type Middleware func(next Handler) Handler

// Router holds the methods and the middleware chain. It is safe for
// concurrent use: methods and middleware may be added while calls are
// served. Writers copy the current table, change the copy and publish it;
// a call loads the table once, so the hot path takes no lock and
// allocates nothing (net/rpc keeps its services in a sync.Map for the same
// reason).
type Router struct {
	mu  sync.Mutex // serialises Handle and Use (copy, change, publish)
	tab atomic.Pointer[routeTable]
}

// routeTable is one version of the router. It is never changed once
// published: Handle and Use publish a new one.
type routeTable struct {
	methods map[string]route
	mw      []Middleware
	chain   Handler // mw around dispatch
}

type route struct {
	h          Handler
	concurrent bool
}

// MethodOption changes how a method is run.
type MethodOption func(*route)

// Concurrent declares that a method's calls need not be answered in order:
// the connection runs each in its own goroutine (at most
// Config.MaxConcurrentCalls at once) and goes on reading, so a slow call
// does not hold up the calls after it. Use it for methods that wait on
// something outside the gateway. Calls inside a batch are still run in
// order.
func Concurrent(r *route) { r.concurrent = true }

// NewRouter returns an empty router.
func NewRouter() *Router {
	r := &Router{}
	r.tab.Store(&routeTable{methods: map[string]route{}, chain: r.dispatch})
	return r
}

// Use appends middleware; the first added is the outermost. Calls that
// started before Use returns may run without it.
func (r *Router) Use(m ...Middleware) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.tab.Load()
	t := &routeTable{methods: old.methods, mw: slices.Concat(old.mw, m)}
	t.chain = r.dispatch
	for i := len(t.mw) - 1; i >= 0; i-- {
		t.chain = t.mw[i](t.chain)
	}
	r.tab.Store(t)
}

// Handle declares a method with an untyped handler. Methods are answered
// in the order their calls arrive on a connection unless declared
// [Concurrent]. A call that arrives after Handle returns finds the method.
func (r *Router) Handle(name string, h Handler, opts ...MethodOption) {
	rt := route{h: h}
	for _, o := range opts {
		o(&rt)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.tab.Load()
	methods := maps.Clone(old.methods)
	methods[name] = rt
	r.tab.Store(&routeTable{methods: methods, mw: old.mw, chain: old.chain})
}

// has reports whether name is a registered method.
func (r *Router) has(name string) bool {
	_, ok := r.tab.Load().methods[name]
	return ok
}

// IsConcurrent reports whether name was declared [Concurrent].
func (r *Router) IsConcurrent(name string) bool { return r.tab.Load().methods[name].concurrent }

// Register declares a method with typed params and result: the router
// decodes params into a new P (a decode error is -32602) and hands the
// returned *R to the connection's codec.
func Register[P, R any](r *Router, name string, fn func(ctx context.Context, p *P) (*R, error), opts ...MethodOption) {
	r.Handle(name, func(ctx context.Context, call *Call) (any, error) {
		p := new(P)
		if err := call.Bind(p); err != nil {
			return nil, err
		}
		res, err := fn(ctx, p)
		if err != nil {
			return nil, err
		}
		return res, nil
	}, opts...)
}

// Serve runs a call through the middleware to its method. A panic in a
// handler or middleware is recovered and becomes -32603 Internal error
// (*PanicError, which the Logging middleware logs with its stack).
func (r *Router) Serve(ctx context.Context, call *Call) (res any, err error) {
	defer func() {
		if v := recover(); v != nil {
			res, err = nil, &PanicError{Method: call.Method, Value: v, Stack: debug.Stack(), inMiddleware: true}
		}
	}()
	return r.tab.Load().chain(ctx, call)
}

func (r *Router) dispatch(ctx context.Context, call *Call) (res any, err error) {
	rt, ok := r.tab.Load().methods[call.Method]
	if !ok {
		return nil, &codec.Error{Code: codec.CodeMethodNotFound, Message: "Method not found", Data: call.Method}
	}
	// Recovered here too, so that middleware sees the error.
	defer func() {
		if v := recover(); v != nil {
			res, err = nil, &PanicError{Method: call.Method, Value: v, Stack: debug.Stack()}
		}
	}()
	return rt.h(ctx, call)
}

// PanicError is a handler's recovered panic. The client gets -32603.
type PanicError struct {
	Method string
	Value  any
	Stack  []byte

	inMiddleware bool // not seen by the Logging middleware: the server logs it
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic in %s: %v", e.Method, e.Value) }

// asRPCError turns any handler error into the error sent to the client.
func asRPCError(err error) *codec.Error {
	var e *codec.Error
	if errors.As(err, &e) {
		return e
	}
	return &codec.Error{Code: codec.CodeInternalError, Message: "Internal error"}
}

// Logging is the middleware that logs calls: each call at debug level,
// calls refused with a client error (a bad param, an unknown method) at
// debug too, since clients choose them, and internal errors (-32603) at
// error level, with the stack of a panic. A call costs nothing more than
// a level check when debug is off.
func Logging(log *slog.Logger) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, call *Call) (any, error) {
			if !log.Enabled(ctx, slog.LevelDebug) {
				res, err := next(ctx, call)
				if err != nil && asRPCError(err).Code == codec.CodeInternalError {
					logInternal(ctx, log, call, err, -1)
				}
				return res, err
			}
			start := time.Now()
			res, err := next(ctx, call)
			d := time.Since(start)
			switch e := asRPCError(err); {
			case err == nil:
				log.LogAttrs(ctx, slog.LevelDebug, "call", callAttrs(ctx, call, d)...)
			case e.Code == codec.CodeInternalError:
				logInternal(ctx, log, call, err, d)
			default:
				log.LogAttrs(ctx, slog.LevelDebug, "call refused", append(callAttrs(ctx, call, d),
					slog.Int64("code", e.Code), slog.String("err", e.Message))...)
			}
			return res, err
		}
	}
}

func callAttrs(ctx context.Context, call *Call, d time.Duration) []slog.Attr {
	info, _ := ConnInfoFrom(ctx)
	attrs := []slog.Attr{slog.String("client_id", info.ClientID), slog.Uint64("conn", info.ID),
		slog.String("protocol", info.Protocol.Name), slog.String("method", call.Method)}
	if d >= 0 {
		attrs = append(attrs, slog.Duration("duration", d))
	}
	return attrs
}

// logInternal logs a call that failed with an internal error (d < 0: not
// timed).
func logInternal(ctx context.Context, log *slog.Logger, call *Call, err error, d time.Duration) {
	attrs := append(callAttrs(ctx, call, d), slog.String("err", fmt.Sprint(err)))
	if pe, ok := errors.AsType[*PanicError](err); ok {
		attrs = append(attrs, slog.String("stack", string(pe.Stack)))
	}
	log.LogAttrs(ctx, slog.LevelError, "call failed", attrs...)
}
