// franz-go (kgo) against `streamlog serve`: produce (idempotent, its
// default) with zstd, consume in a group of two members that commit, and
// the commits read back with kadm. Usage: go run . BOOTSTRAP; exits 1 on a
// failure.
package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func fail(format string, args ...any) {
	fmt.Printf("FAIL franz-go: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	bootstrap := os.Args[1]
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	admin, err := kgo.NewClient(kgo.SeedBrokers(bootstrap))
	if err != nil {
		fail("client: %v", err)
	}
	adm := kadm.NewClient(admin)
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, "franz"); err != nil {
		fail("create topic: %v", err)
	}

	p, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	if err != nil {
		fail("producer: %v", err)
	}
	for i := 0; i < 300; i++ {
		r := &kgo.Record{Topic: "franz", Key: []byte(fmt.Sprintf("k%d", i%11)), Value: []byte(fmt.Sprintf("v%d", i))}
		if err := p.ProduceSync(ctx, r).FirstErr(); err != nil {
			fail("produce %d: %v", i, err)
		}
	}
	p.Close()
	fmt.Println("PASS franz-go: 300 records produced (idempotent, zstd)")

	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for m := 0; m < 2; m++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.ConsumerGroup("franz-group"),
				kgo.ConsumeTopics("franz"), kgo.DisableAutoCommit(),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				fail("consumer: %v", err)
			}
			defer c.Close()
			for {
				mu.Lock()
				n := len(seen)
				mu.Unlock()
				if n >= 300 || ctx.Err() != nil {
					break
				}
				pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
				fetches := c.PollFetches(pctx)
				pcancel()
				fetches.EachRecord(func(r *kgo.Record) {
					mu.Lock()
					seen[string(r.Value)] = true
					mu.Unlock()
				})
				// A commit refused by a rebalance is retried after the next poll.
				_ = c.CommitUncommittedOffsets(ctx)
			}
			_ = c.CommitUncommittedOffsets(ctx)
		}()
	}
	wg.Wait()
	if len(seen) != 300 {
		fail("consumed %d distinct records, want 300", len(seen))
	}
	fmt.Println("PASS franz-go: a group of two members consumed all 300")

	offsets, err := adm.FetchOffsets(ctx, "franz-group")
	if err != nil {
		fail("fetch offsets: %v", err)
	}
	var total int64
	offsets.Each(func(o kadm.OffsetResponse) { total += o.At })
	if total != 300 {
		fail("committed offsets sum to %d, want 300", total)
	}
	admin.Close()
	fmt.Println("PASS franz-go: the commits are read back with kadm")
}
