/*
 * The lease protocol of statelang's workers, as a Promela model for SPIN (Debian's `spin`).
 *
 * What it describes: one execution of N steps, W workers (engine.py `Engine`) sharing one store
 * (storage.py `MemoryStore`, store/sql.py `SqlStore`). A worker claims the execution, loads its
 * checkpoint, runs the step's handlers while its `LeaseKeeper` renews the lease, and commits the
 * step fenced by its worker id; the last commit of a pass gives the lease back. Workers crash at
 * any point (losing everything not committed) and stall (a paused process: nothing of it runs,
 * not even its lease keeper); a dead or silent worker's lease is taken over by claim.
 *
 * Why a model: the engine's tests exercise the interleavings someone thought of; SPIN explores
 * every interleaving of claim, renew, fence, commit, takeover and crash for the small sizes below,
 * and the guarantees this protocol exists for are stated here as checked properties:
 *   (1) no step is committed twice                  assert in `commit` (commits[s] == 1)
 *   (2) no commit is accepted from a writer whose   assert in `commit` (!taken[me]: nobody
 *       lease was taken                             claimed the lease since this writer did)
 *   (3) no execution is left without an owner       ltl `progress`: <> done, checked with weak
 *       forever: if a worker stays alive, the       fairness (pan -a -f); crashes < W, so one
 *       execution completes                         worker always stays alive
 *
 * The clock is abstract: time passing is a nondeterministic event (process `Clock`), bounded by
 * the real ordering: a lease expires only while its owner does not renew it (crashed, or
 * stalled — a stall also stands for a batch so long that a claimed execution waits past its
 * lease before `_step` reaches it); a message falls due "later"; a worker's heartbeat goes stale
 * only while it writes none.
 *
 * Heartbeats as implemented: `Engine.serve_forever` writes them from a thread of their own
 * (`worker._heartbeat_loop`), so a worker is silent only when it crashed or stalled, also while
 * a step runs. Define BEAT_GAP_IN_STEP for the earlier design, heartbeats only between rounds of
 * `run_until_idle`: then two live workers can take one execution from each other for ever.
 *
 * Variants (spin -D...), each one a way the checks must fail:
 *   NO_FENCE     `Store.apply` without its fence check: spin finds a step committed twice.
 *   STOP_WRITER  a stop request committed without a claim (fence=None) beside the lease
 *                holder's commit; `Engine.stop_execution` now goes through `Engine.process`,
 *                which leases the execution first (`Store.claim_one`) and fences its commit.
 *   POISON       a poisoned step's failure committed unfenced after its lease was taken;
 *                `poison.fail_poisoned` (and `poison.quarantine`) now claim the execution again
 *                (`Store.claim_one`) and commit fenced, as any step does.
 *   NO_KICK      no `run.kick` with the invocations a commit leaves in flight: a worker that
 *                dies while they run strands the execution (the progress check fails).
 *   CHECK=1|2    keep only property (1) or (2), so that each is shown failing on its own.
 *
 * Sizes: W workers (2 or 3), N steps, FAULTS crashes and stalls in all (crashes < W).
 * The model is checked by tests/test_lease_model.py (spin -a; gcc; ./pan); it is a repository
 * file, not package data: nothing at run time reads it.
 */

#ifndef W
#define W 2
#endif
#ifndef N
#define N 2
#endif
#ifndef FAULTS
#define FAULTS 2
#endif

/* the execution's one message slot (a "run" message, the in-flight "kick", a timer) */
#define NONE  0
#define LATER 1          /* added by a commit, due when its time comes (Clock) */
#define DUE   2          /* due now: the execution can be claimed */

#ifdef NO_KICK
#define KICK NONE        /* the variant without Engine._flush's safety-net message */
#else
#define KICK LATER
#endif

/* where a worker is */
#define IDLE  0          /* worker._serve between rounds: writes heartbeats, claims */
#define BATCH 1          /* claimed (Engine._claim), waiting for its turn (or a thread) in run_until_idle */
#define STEP  2          /* inside Engine.process -> Engine._step */
#define DEAD  3          /* crashed: everything not committed is lost */

/* ---- the store: one row of `executions` and its messages (MemoryStore / SqlStore) ---- */
byte owner = 0;          /* executions.lease_owner: a worker id 1..W, 0 = NULL */
bool expired = false;    /* executions.lease_expires <= now */
bool taken[W + 1];       /* the lease this worker claimed was claimed by another since (the
                            model's witness for property 2, not a column) */
byte msg = DUE;          /* the message `Engine.start` adds: the execution is due at once */
byte checkpoint = 0;     /* steps committed: frames + next_event_id of the last commit */
bool done = false;       /* executions.status != RUNNING */
byte commits[N + 1];     /* how often step s was committed (property 1) */
bool stale[W + 1];       /* workers.heartbeat <= now - takeover_seconds */

/* ---- the workers ---- */
byte phase[W + 1];       /* IDLE, BATCH, STEP, DEAD */
bool stalled[W + 1];     /* paused: runs nothing, renews nothing, beats nothing */
bool crash[W + 1];       /* the process is killed (SIGKILL, OOM, power) */
byte faults = 0;         /* crashes and stalls so far (at most FAULTS) */
byte crashes = 0;        /* at most W - 1: one worker stays alive */

#ifdef BEAT_GAP_IN_STEP
/* the earlier design: heartbeats only between run_until_idle rounds, silent while a batch runs */
#define BEAT_GAP(w) (phase[w] == BATCH || phase[w] == STEP)
#else
/* worker._heartbeat_loop, a thread of its own: silent only when crashed or stalled */
#define BEAT_GAP(w) false
#endif

/* The properties (CHECK=1 or CHECK=2 keeps one of them, to show each alone can fail) */
#if !defined(CHECK) || CHECK == 1
#define CHECK_ONCE  assert(commits[base + 1] == 1)
#else
#define CHECK_ONCE  skip
#endif
#if !defined(CHECK) || CHECK == 2
#define CHECK_OWNER assert(!taken[me])
#else
#define CHECK_OWNER skip
#endif

/* A stall at this point of the worker: it pauses (its lease may expire, its heartbeat go
 * stale), then resumes where it was. */
#define STALL_POINT \
    if \
    :: atomic { faults < FAULTS -> faults++; stalled[me] = true }; \
       stalled[me] = false \
    :: skip \
    fi

/* Store.release(arn, worker) and a commit's `release`: clears the lease only if still ours */
#define RELEASE \
    if \
    :: owner == me -> owner = 0; expired = false \
    :: else -> skip \
    fi

active [W] proctype Worker()
{
    byte me = _pid + 1;  /* the engine's worker_id */
    byte base;           /* the checkpoint this step loaded (Engine._load) */

    {
end_idle:
        do
        :: atomic {
            /* Engine._claim -> Store.claim: a due message, and the lease free (NULL, expired,
             * or its owner's heartbeat older than stale_before = now - takeover_seconds) */
            phase[me] == IDLE && !done && msg == DUE &&
            (owner == 0 || expired || stale[owner]) ->
                if
                :: owner != 0 && owner != me -> taken[owner] = true   /* a takeover */
                :: else -> skip
                fi;
                owner = me; expired = false; taken[me] = false;
                phase[me] = BATCH
           };
           /* run_until_idle: `process` reaches this execution after the earlier ones of the batch */
           STALL_POINT;
           /* Engine._step: a claim older than lease/2 is renewed first (Store.renew) */
           if
           :: atomic { owner == me -> expired = false; phase[me] = STEP }   /* renewed */
           :: atomic { owner != me -> phase[me] = STEP }; goto lost           /* renew False: LeaseLost */
           :: atomic { phase[me] = STEP }                                     /* claimed recently: no renewal */
           fi;
           /* Engine._load (the checkpoint) and Store.due_messages */
           atomic {
               base = checkpoint;
               if
               :: done ->
                   /* the execution ended meanwhile: `_step` applies a fenced commit that only
                    * consumes its messages, then Store.release */
                   RELEASE; goto pass_end
               :: else -> skip
               fi
           };
step_loop:
           /* Engine._drive -> _invoke_all: the step's handlers run; LeaseKeeper._run renews
            * every lease/3 (Store.renew, extends only if still the owner) */
           STALL_POINT;
           atomic {
               if
               :: owner == me -> expired = false
               :: else -> skip          /* the keeper sees the lease taken and stops */
               fi
           };
           /* after the keeper stops: _apply_outcomes, the interpreter's advance, _commit_of */
           STALL_POINT;
#ifdef POISON
           if
           :: skip
           :: /* the step raised what nothing expected: Engine.process -> poison.fail_poisoned, which
               * reloads the checkpoint (Engine._load: a fresh run, lease_holder None) ... */
              atomic { base = checkpoint };
              atomic {
                  if
                  :: done -> RELEASE                /* not RUNNING: Store.release */
                  :: else ->
                      /* ... and commits States.Runtime through Engine._flush: fence=None */
                      commits[base + 1]++;
                      CHECK_ONCE;
                      checkpoint = base + 1; done = true; msg = NONE; RELEASE
                  fi
              };
              goto pass_end
           fi;
#endif
           atomic {
               /* Engine._flush -> Store.apply(Commit(fence=run.lease_holder)): the fence is
                * checked first, inside the commit's transaction (MemoryStore.apply,
                * SqlStore._apply: lease_of row owner == commit.fence, else LeaseLost) */
#ifndef NO_FENCE
               if
               :: owner != me -> goto lost   /* LeaseLost: refused whole, the step discarded */
               :: else -> skip
               fi;
#endif
               /* accepted: the step's events, frames and messages are written */
               commits[base + 1]++;
               CHECK_ONCE;                       /* (1) no step committed twice */
               CHECK_OWNER;                      /* (2) no commit by a writer whose lease was taken */
               checkpoint = base + 1;
               base++;
               if
               :: base == N ->
                   /* the execution ends: close_all drops its messages; commit.release */
                   done = true; msg = NONE; RELEASE; goto pass_end
               :: else ->
                   /* the commit consumes the message it applied (or the previous kick) and adds
                    * one for what comes next */
                   if
                   :: msg = KICK                /* handlers in flight: Engine._flush adds `run.kick`,
                                                 * due after `_kick_seconds()`; the pass goes on */
                   :: msg = LATER;              /* the execution waits for a timer or a token: */
                      RELEASE; goto pass_end    /* commit.release, the pass ends */
                   fi
               fi
           };
           goto step_loop;
lost:
           /* Engine.process catches LeaseLost; _step's `finally` calls Store.release, a no-op
            * as the lease is another's */
           atomic { RELEASE };
pass_end:
           /* back in worker._serve: the next round begins with a heartbeat (_beat) */
           atomic { phase[me] = IDLE; stale[me] = false }
        od
    } unless { crash[me] };
    /* the worker is gone; its lease stays in the row until it expires or its heartbeat is stale */
    phase[me] = DEAD;
    stalled[me] = false
}

/* A heartbeat goes stale only while its worker writes none */
#define STALE(w) \
    :: atomic { !stale[w] && (stalled[w] || phase[w] == DEAD || BEAT_GAP(w)) -> stale[w] = true }

/* A worker is killed (at most W - 1 of them, within the fault budget) */
#define KILL(w) \
    :: atomic { faults < FAULTS && crashes < W - 1 && phase[w] != DEAD && !crash[w] -> \
                crash[w] = true; crashes++; faults++ }

active proctype Clock()
{
end_clock:
    do
    :: atomic { msg == LATER -> msg = DUE }   /* a kick's or a timer's due time passes */
    :: atomic {
           /* lease_expires passes: only for an owner that does not renew */
           owner != 0 && !expired && (stalled[owner] || phase[owner] == DEAD) -> expired = true
       }
    STALE(1)
    STALE(2)
    KILL(1)
    KILL(2)
#if W > 2
    STALE(3)
    KILL(3)
#endif
    od
}

#ifdef STOP_WRITER
/* Engine.stop_execution in another process (`statelang stop`, the API's StopExecution): it adds
 * a "stop" message, then calls `process(arn)` without claiming, so `_step(arn, None)` loads the
 * checkpoint and commits ExecutionAborted with fence=None, whoever holds the lease. */
active proctype Stopper()
{
    byte base;
    atomic { base = checkpoint };      /* _step(arn, None) -> _load */
    atomic {
        if
        :: done -> skip                /* not RUNNING: nothing to abort */
        :: else ->
            /* Store.apply(Commit(fence=None, close_all)): no fence to check */
            commits[base + 1]++;
            CHECK_ONCE;
            checkpoint = base + 1; done = true; msg = NONE
        fi
    }
    /* Store.release(arn, worker_id): a no-op, it held no lease */
}
#endif

/* (3) the execution is never left without an owner forever: it completes */
ltl progress { <> done }
