package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"

	"github.com/credsidecar/credsidecar/internal/clock"
	"github.com/credsidecar/credsidecar/internal/creds"
)

// virtualSTS stands in for STS where the measurement runs on a virtual clock: a day of refreshes
// for one sidecar (the STS economy) or for 10,000 at once (the fleet simulation). SeaweedFS, the
// real STS every other figure uses, stamps credentials with the wall clock, so a virtual day
// would see them expire at once; and 10,000 real STS sessions cannot run on this machine. It
// answers like STS (credentials for DurationSeconds from the caller's clock) and counts calls
// per virtual second since start. It never fails: faults are the reliability suite's business.
type virtualSTS struct {
	start  time.Time
	counts []atomic.Int64 // per virtual second since start
	total  atomic.Int64
	late   atomic.Int64 // calls after the counted span
	issued atomic.Int64
}

func newVirtualSTS(start time.Time, span time.Duration) *virtualSTS {
	return &virtualSTS{start: start, counts: make([]atomic.Int64, int(span/time.Second)+1)}
}

// client returns the STS API for one sidecar whose clock is clk.
func (v *virtualSTS) client(clk clock.Clock) creds.STSAPI { return &virtualClient{v: v, clk: clk} }

type virtualClient struct {
	v   *virtualSTS
	clk clock.Clock
}

func (c *virtualClient) AssumeRoleWithWebIdentity(_ context.Context, in *sts.AssumeRoleWithWebIdentityInput, _ ...func(*sts.Options)) (*sts.AssumeRoleWithWebIdentityOutput, error) {
	now := c.clk.Now()
	sec := int(now.Sub(c.v.start) / time.Second)
	if sec >= 0 && sec < len(c.v.counts) {
		c.v.counts[sec].Add(1)
	} else {
		c.v.late.Add(1)
	}
	c.v.total.Add(1)
	n := c.v.issued.Add(1)
	exp := now.Add(time.Duration(aws.ToInt32(in.DurationSeconds)) * time.Second)
	return &sts.AssumeRoleWithWebIdentityOutput{
		Credentials: &types.Credentials{
			AccessKeyId:     aws.String(fmt.Sprintf("ASIAVIRTUAL%09d", n)),
			SecretAccessKey: aws.String(fmt.Sprintf("virtual-secret-%d", n)),
			SessionToken:    aws.String(fmt.Sprintf("virtual-session-%d", n)),
			Expiration:      &exp,
		},
		AssumedRoleUser: &types.AssumedRoleUser{
			Arn:           aws.String("arn:aws:sts::111122223333:assumed-role/bench/" + aws.ToString(in.RoleSessionName)),
			AssumedRoleId: aws.String("AROAVIRTUAL:" + aws.ToString(in.RoleSessionName)),
		},
	}, nil
}

// perSecond copies the counts.
func (v *virtualSTS) perSecond() []int64 {
	out := make([]int64, len(v.counts))
	for i := range v.counts {
		out[i] = v.counts[i].Load()
	}
	return out
}

// callLog records the virtual times of one sidecar's STS calls, for the economy figures.
type callLog struct {
	mu    sync.Mutex
	times []time.Time
}

func (l *callLog) add(t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.times = append(l.times, t)
}

func (l *callLog) list() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.times...)
}

// loggingSTS records each call's time before passing it on.
type loggingSTS struct {
	next creds.STSAPI
	clk  clock.Clock
	log  *callLog
}

func (l *loggingSTS) AssumeRoleWithWebIdentity(ctx context.Context, in *sts.AssumeRoleWithWebIdentityInput, opts ...func(*sts.Options)) (*sts.AssumeRoleWithWebIdentityOutput, error) {
	l.log.add(l.clk.Now())
	return l.next.AssumeRoleWithWebIdentity(ctx, in, opts...)
}
