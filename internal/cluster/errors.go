package cluster

import (
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// The kinds of failure a question to the cluster comes to. Test them with
// errors.Is; the *Error says what was asked.
var (
	// ErrUnreachable: no connection to the API server or the etcd member
	// (nothing listens, the host is down, a timeout).
	ErrUnreachable = errors.New("unreachable")
	// ErrUnavailable: it answered, but cannot serve the request now (an
	// API server not ready, an etcd cluster without quorum or settling
	// after a membership change): trying again later may work.
	ErrUnavailable = errors.New("unavailable")
	// ErrNotFound: the object or member does not exist.
	ErrNotFound = errors.New("not found")
	// ErrForbidden: the identity may not do this (or is not accepted).
	ErrForbidden = errors.New("forbidden")
	// ErrRefused: the request was refused as it stands (invalid, a
	// conflict, a disruption budget, an etcd precondition).
	ErrRefused = errors.New("refused")
	// ErrInvalidAnswer: the answer could not be read.
	ErrInvalidAnswer = errors.New("an answer that could not be read")
)

// Error is a question to the cluster that failed.
type Error struct {
	Op   string // what was asked: "get node w1"
	Kind error  // one of the Err values above
	Err  error  // what the library said
}

func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("%s: %v", e.Op, e.Kind)
	}
	return fmt.Sprintf("%s: %v", e.Op, e.Err)
}

// Is matches the kind, so errors.Is(err, cluster.ErrNotFound) works.
func (e *Error) Is(target error) bool { return target == e.Kind }
func (e *Error) Unwrap() error        { return e.Err }

// wrap classifies err from client-go, etcd's client or the transport.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var ce *Error
	if errors.As(err, &ce) {
		return err
	}
	return &Error{Op: op, Kind: kindOf(err), Err: err}
}

func kindOf(err error) error {
	switch {
	case apierrors.IsNotFound(err):
		return ErrNotFound
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
		return ErrForbidden
	case apierrors.IsServiceUnavailable(err), apierrors.IsTimeout(err), apierrors.IsServerTimeout(err),
		apierrors.IsInternalError(err):
		return ErrUnavailable
	case apierrors.IsTooManyRequests(err), apierrors.IsConflict(err), apierrors.IsInvalid(err),
		apierrors.IsBadRequest(err), apierrors.IsAlreadyExists(err), apierrors.IsMethodNotSupported(err):
		return ErrRefused
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return ErrRefused // another answer of the API server
	}
	if k, ok := etcdKind(err); ok {
		return k
	}
	// No answer: nothing listens, the connection or the host failed, or
	// the time ran out.
	return ErrUnreachable
}

// etcdKind classifies the errors of etcd's client by their gRPC code and,
// where etcd says more, by its typed errors.
func etcdKind(err error) (error, bool) {
	switch rpctypes.Error(err) {
	case rpctypes.ErrUnhealthy, rpctypes.ErrMemberNotEnoughStarted, rpctypes.ErrMemberLearnerNotReady,
		rpctypes.ErrTooManyLearners, rpctypes.ErrNoLeader, rpctypes.ErrNotLeader, rpctypes.ErrLeaderChanged,
		rpctypes.ErrNotCapable, rpctypes.ErrStopped, rpctypes.ErrTimeout, rpctypes.ErrTimeoutDueToLeaderFail,
		rpctypes.ErrTimeoutDueToConnectionLost:
		return ErrUnavailable, true
	case rpctypes.ErrMemberNotFound:
		return ErrNotFound, true
	case rpctypes.ErrPeerURLExist, rpctypes.ErrMemberExist:
		return ErrRefused, true
	case rpctypes.ErrPermissionDenied, rpctypes.ErrUserEmpty:
		return ErrForbidden, true
	}
	s, ok := status.FromError(err)
	if !ok {
		return nil, false
	}
	switch s.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return ErrUnreachable, true
	case codes.NotFound:
		return ErrNotFound, true
	case codes.PermissionDenied, codes.Unauthenticated:
		return ErrForbidden, true
	case codes.FailedPrecondition, codes.InvalidArgument, codes.AlreadyExists:
		return ErrRefused, true
	}
	return ErrUnavailable, true
}

// IsConflict reports a write refused because the object changed since it
// was read.
func IsConflict(err error) bool {
	var ce *Error
	return errors.As(err, &ce) && apierrors.IsConflict(ce.Err)
}

// IsUnauthorized reports an identity the API server did not accept (401):
// a bootstrap token that expired, a certificate of another CA.
func IsUnauthorized(err error) bool {
	var ce *Error
	return errors.As(err, &ce) && apierrors.IsUnauthorized(ce.Err)
}
