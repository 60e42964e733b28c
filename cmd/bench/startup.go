package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/credsidecar/credsidecar/internal/creds"
	"github.com/credsidecar/credsidecar/internal/testkit/testbed"
)

// logTime reads the "time" of a JSON log line.
func logTime(line string) (time.Time, error) {
	var rec struct {
		Time time.Time `json:"time"`
	}
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		return time.Time{}, err
	}
	return rec.Time, nil
}

// stsRoundTrip times one AssumeRoleWithWebIdentity at SeaweedFS from a new client, so on a new
// connection, as the sidecar's first call is.
func stsRoundTrip(ctx context.Context, e *env) (time.Duration, error) {
	tok, err := os.ReadFile(e.proj.Path())
	if err != nil {
		return 0, err
	}
	api := creds.NewSTSClient(testbed.Region, e.weed.Endpoint())
	began := time.Now()
	_, err = api.AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
		RoleArn:          aws.String(e.weed.RoleARN()),
		RoleSessionName:  aws.String("bench"),
		WebIdentityToken: aws.String(string(tok)),
		DurationSeconds:  aws.Int32(3600),
	})
	took := time.Since(began)
	if err != nil {
		return 0, fmt.Errorf("sts round trip: %w", err)
	}
	return took, nil
}

// benchStartup times the built sidecar from exec to its first 200, and one STS round trip.
func benchStartup(ctx context.Context, e *env, r *report) error {
	var ready, listening, stsOwn, rtt, overhead []time.Duration
	for i := range e.s.startRuns {
		d, err := stsRoundTrip(ctx, e)
		if err != nil {
			return err
		}
		rtt = append(rtt, d)

		p, err := e.spawnSidecar(ctx, "")
		if err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		readyAt, err := p.WaitServing(wctx)
		cancel()
		if err != nil {
			_ = p.Stop(10 * time.Second)
			return err
		}
		line, lerr := p.WaitLog(ctx, `"msg":"credsidecar starting"`)
		own, merr := p.Metric(ctx, "credsidecar_sts_request_duration_seconds_sum")
		calls, cerr := p.Metric(ctx, "credsidecar_sts_requests_total")
		if serr := p.Stop(10 * time.Second); serr != nil {
			e.log.Warn("sidecar stop", "error", serr.Error())
		}
		for _, err := range []error{lerr, merr, cerr} {
			if err != nil {
				return err
			}
		}
		if calls != 1 {
			return fmt.Errorf("start-up made %v STS calls, want 1", calls)
		}
		lt, err := logTime(line)
		if err != nil {
			return err
		}
		ownD := time.Duration(own * float64(time.Second))
		total := readyAt.Sub(p.Started)
		ready = append(ready, total)
		listening = append(listening, lt.Sub(p.Started))
		stsOwn = append(stsOwn, ownD)
		overhead = append(overhead, total-ownD)
		e.log.Info("start", "run", i+1, "ready", total.String(), "listening", lt.Sub(p.Started).String(),
			"sidecar_sts_call", ownD.String(), "sts_rtt", d.String())
	}
	over := medianDuration(overhead)
	r.h2("5. Start to ready")
	r.p("The built `cmd/sidecar` against local SeaweedFS, %s: from just before fork/exec to the first 200 "+
		"from /v1/credentials (a client asks as soon as the listeners are bound; the endpoint holds it until the "+
		"first credentials arrive). The sidecar's own STS call is its credsidecar_sts_request_duration_seconds; "+
		"an STS round trip from a new client is also timed separately, between starts.", count(e.s.startRuns, "start", "starts"))
	r.table([]string{"", "median", "min", "max"}, [][]string{
		{"exec to ready (first 200)", ms(medianDuration(ready)), ms(quantileDuration(ready, 0)), ms(quantileDuration(ready, 1))},
		{"exec to listening (start-up log line)", ms(medianDuration(listening)), ms(quantileDuration(listening, 0)), ms(quantileDuration(listening, 1))},
		{"the sidecar's STS call (its metric)", ms(medianDuration(stsOwn)), ms(quantileDuration(stsOwn, 0)), ms(quantileDuration(stsOwn, 1))},
		{"STS round trip, new client (bench)", ms(medianDuration(rtt)), ms(quantileDuration(rtt, 0)), ms(quantileDuration(rtt, 1))},
		{"ready minus the sidecar's STS call", ms(over), ms(quantileDuration(overhead, 0)), ms(quantileDuration(overhead, 1))},
	})
	r.checks("5. Start to ready", [][]string{
		{fmt.Sprintf("<= 50 ms plus one STS round trip: %s + %s", ms(over), ms(medianDuration(stsOwn))), verdict(over <= 50*time.Millisecond)},
	})
	return nil
}
