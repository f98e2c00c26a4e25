using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Telemetry;
using DistributedBackprop.Cluster.Transport;
using DistributedBackprop.Cluster.Trust;
using DistributedBackprop.Core.Data;
using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Training;

namespace DistributedBackprop.Cluster.Workers;

/// <summary>
/// A worker: a sharding entity that computes what the coordinator assigns (slices of a step, statistics chunks,
/// evaluation chunks) on its node's local data and replies to the coordinator directly. It keeps no state the
/// coordinator cannot rebuild: when sharding moves it, it starts empty and asks the node's cache for weights.
/// One job at a time; the next waits in the stash.
/// </summary>
public sealed class WorkerEntity : ReceiveActor, IWithStash, IWithTimers
{

    private readonly string _workerId;
    private readonly NodeContext _context;
    private readonly JobSpec _spec;
    private readonly IActorRef _cache;
    private readonly TensorTransport _transport;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private SliceRunner? _runner;
    private Workspace? _evaluationWorkspace;

    public WorkerEntity(string workerId, NodeContext context, IActorRef cache)
    {
        _workerId = workerId;
        _context = context;
        _spec = context.Spec;
        _cache = cache;
        _transport = TensorTransport.For(Context.System);
        Become(Idle);
    }

    public IStash Stash { get; set; } = null!;

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record WeightsDidNotArrive(long Version);

    private ComputeLane? _lane;

    protected override void PreStart()
    {
        _lane = new ComputeLane($"distbp-{_workerId}");
        // Compiles the step path on the lane before any job arrives (the first job waits behind it if it comes sooner).
        var (context, log, workerId) = (_context, _log, _workerId);
        _lane.Run(() =>
        {
            // The runner (a network of the options' shape, equivalent to the setup's) is kept for the steps.
            _runner = StepWarmUp.Runner(context.Spec.Options, context.Spec.ThreadsPerWorker, context.Pool);
            StepWarmUp.Run(context.Spec.Options, context.Spec.RawData.Train, _runner);
            return 0;
        }).ContinueWith(t => log.Warning("worker {0}: the warm-up step failed (the first step compiles instead): {1}", workerId,
            t.Exception!.GetBaseException().Message), TaskContinuationOptions.OnlyOnFaulted);
        TrainingMetrics.LocalWorkerStarted();
    }

    protected override void PostStop()
    {
        // The runner's threads stop after whatever job the lane still runs (the warm-up, which makes the runner, included).
        _lane?.Run(() =>
        {
            _runner?.Dispose();
            return 0;
        });
        _lane?.Dispose();
        TrainingMetrics.LocalWorkerStopped();
    }

    private sealed record Computed(IActorRef ReplyTo, IReadOnlyList<IWireMessage> Replies);

    private sealed record Failed(IActorRef ReplyTo, string RunId, long Step, Exception Error);

    private void Idle()
    {
        Receive<StopWorker>(_ => Context.Stop(Self));
        // The provider's address is the cluster's self address (and still an address outside a cluster, in tests).
        Receive<StartWorker>(start =>
        {
            if (FromCoordinator(start))
            {
                // Answered once the warm-up is done (the lane runs its jobs in order): a worker started mid-run, on a
                // node that joins, gets its first slices warm, not while it compiles (its first step, over 100 ms against
                // the others' ~11 ms, got copies, and the new worker sat out the next 5 s as silent).
                var (replyTo, self, started) = (Sender, Self, new WorkerStarted(start.RunId, _workerId,
                    ((ExtendedActorSystem)Context.System).Provider.DefaultAddress.ToString()));
                _lane!.Run(() => 0).ContinueWith(_ => replyTo.Tell(started, self), TaskScheduler.Default);
            }
        });
        Receive<ComputeSlices>(job =>
        {
            if (FromCoordinator(job) && IsThisRun(job.RunId, job.Step) && InRange(job, job.FirstSlice, job.SliceCount,
                    _spec.Options.Slices, "slices") && InRange(job, job.Step, 1, TotalSteps, "steps"))
            {
                WithWeights(job.RunId, job.Version, job.Generation, Sender, (weights, setup, plan) => ComputeSlices(job, weights, setup, plan));
            }
        });
        Receive<EvaluateChunks>(job =>
        {
            if (FromCoordinator(job) && IsThisRun(job.RunId, job.Version)
                && InRange(job, job.FirstChunk, job.ChunkCount, Evaluator.ChunkCount(_spec.RawData.Test.Count), "evaluation chunks"))
            {
                WithWeights(job.RunId, job.Version, job.Generation, Sender, (weights, setup, _) => Evaluate(job, weights, setup));
            }
        });
        Receive<ComputeStatistics>(job =>
        {
            if (FromCoordinator(job) && IsThisRun(job.RunId, -1)
                && InBounds(job, job.ChunkRows, 1, FeatureStatistics.DefaultChunkRows, "rows per chunk")
                && InRange(job, job.FirstChunk, job.ChunkCount,
                    (_spec.RawData.Train.Count + job.ChunkRows - 1) / job.ChunkRows, "statistics chunks"))
            {
                Start(Sender, job.RunId, -1, () => Statistics(job));
            }
        });
    }

    /// <summary>
    /// A job of another run (options with another hash) would compute on data set up for this run: refuse it with
    /// <see cref="WorkFailed"/> and return false.
    /// </summary>
    private bool IsThisRun(string runId, long step)
    {
        if (runId == _spec.ConfigHash)
        {
            return true;
        }
        // The reply names no run id: neither the job's nor this node's.
        Sender.Tell(new WorkFailed(runId, step, _workerId, "the job is of another run; refused"));
        return false;
    }

    /// <summary>Asks the node's cache for a weights version (it comes with the node's setup), then runs the work with it.</summary>
    private void WithWeights(string runId, long version, long generation, IActorRef replyTo,
        Func<Core.Model.ModelWeights, TrainingSetup, RangePlan?, IReadOnlyList<IWireMessage>> work)
    {
        _cache.Tell(new GetWeights(runId, version, generation));
        Timers.StartSingleTimer("weights", new WeightsDidNotArrive(version), _spec.Tuning.WeightsWait);
        void GiveUp(string reason)
        {
            Timers.Cancel("weights");
            _log.Warning("worker {0} gave up its job at version {1}: {2}", _workerId, version, reason);
            replyTo.Tell(new WorkFailed(runId, version, _workerId, reason));
            BecomeIdle();
        }
        Become(() =>
        {
            Receive<WeightsAvailable>(w => w.Version == version, w =>
            {
                Timers.Cancel("weights");
                _plan = w.Plan;
                Start(replyTo, runId, version, () => work(w.Weights, w.Setup, w.Plan));
            });
            Receive<WeightsGone>(g => g.Version == version, _ => GiveUp($"weights version {version} is gone"));
            Receive<WeightsDidNotArrive>(late => late.Version == version,
                _ => GiveUp($"weights version {version} did not reach this node in {_spec.Tuning.WeightsWait.TotalSeconds:F0} s"));
            // Only a coordinator that starts (a new incarnation after the old one died) or re-homes workers sends this:
            // the job waiting here is the old incarnation's, and its weights may never come. Answer the new one now.
            Receive<StartWorker>(_ =>
            {
                Stash.Stash();
                GiveUp($"a coordinator started while weights version {version} was awaited");
            });
            // A hand-off (a rebalance, a node leaving) must not wait for weights that may never come: the job goes back
            // to the coordinator, which gives it to a live worker, and the entity stops.
            Receive<StopWorker>(_ =>
            {
                GiveUp($"handed off while weights version {version} was awaited");
                Context.Stop(Self);
            });
            ReceiveAny(_ => Stash.Stash());
        });
    }

    /// <summary>Runs the work off the actor's thread and replies when it is done.</summary>
    private void Start(IActorRef replyTo, string runId, long step, Func<IReadOnlyList<IWireMessage>> work)
    {
        _lane!.Run(work).ContinueWith(t => t.IsCompletedSuccessfully
                ? (object)new Computed(replyTo, t.Result)
                : new Failed(replyTo, runId, step, t.Exception!.GetBaseException()))
            .PipeTo(Self);
        Become(() =>
        {
            Receive<Computed>(done =>
            {
                foreach (var reply in done.Replies)
                {
                    // A piece goes to its range's owner (sharded aggregation), everything else to whoever asked.
                    _transport.Send(reply is GradientPiece piece ? OwnerOf(piece.Range) : done.ReplyTo, reply, Self);
                }
                BecomeIdle();
            });
            Receive<Failed>(failed =>
            {
                _log.Error(failed.Error, "worker {0} failed at step {1}", _workerId, failed.Step);
                if (failed.Error is OutOfMemoryException)
                {
                    // Re-assigning the slices would only fail again on some node, for ever: this process ends the job
                    // on its side (exit 1), as a pod that hits its memory limit would.
                    _context.Ended(new JobOutcome(JobStatus.Failed,
                        $"worker {_workerId} ran out of memory at step {failed.Step} ({GC.GetGCMemoryInfo().TotalAvailableMemoryBytes:N0} bytes available); use narrower layers or give the process more memory"));
                }
                failed.ReplyTo.Tell(new WorkFailed(failed.RunId, failed.Step, _workerId, failed.Error.Message));
                BecomeIdle();
            });
            ReceiveAny(_ => Stash.Stash());
        });
    }

    private void BecomeIdle()
    {
        Become(Idle);
        Stash.UnstashAll();
    }

    private long TotalSteps => (long)(_spec.RawData.Train.Count / _spec.Options.Batch) * _spec.Options.Epochs;

    private bool FromCoordinator(object job) => Senders.FromCoordinator(Sender, Context.System, _log, job);

    /// <summary>
    /// A job's range [<paramref name="first"/>, first + <paramref name="count"/>) must lie in [0, <paramref name="limit"/>)
    /// and be non-empty: a job that asks for more would make this worker loop or index out of its data.
    /// </summary>
    private bool InRange(object job, long first, long count, long limit, string what)
    {
        if (first >= 0 && count > 0 && first + count <= limit)
        {
            return true;
        }
        Senders.Drop(_log, job, Sender, $"{what} {first}..{first + count - 1} are outside 0..{limit - 1}");
        return false;
    }

    /// <summary>A job's <paramref name="value"/> must lie in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    private bool InBounds(object job, long value, long min, long max, string what)
    {
        if (value >= min && value <= max)
        {
            return true;
        }
        Senders.Drop(_log, job, Sender, $"{what} {value} is outside {min}..{max}");
        return false;
    }

    /// <summary>The owner of range <paramref name="range"/> in the plan of the weights the last job used.</summary>
    private IActorRef OwnerOf(int range)
    {
        if (_owners.Plan != _plan)
        {
            var provider = ((ExtendedActorSystem)Context.System).Provider;
            _owners = (_plan, _plan!.Owners.Select(o => provider.ResolveActorRef(ActorPath.Parse(o) / "user" / "range-owner")).ToArray());
        }
        return _owners.Refs[range];
    }

    private RangePlan? _plan;
    private (RangePlan? Plan, IActorRef[] Refs) _owners = (null, []);

    private IReadOnlyList<IWireMessage> ComputeSlices(ComputeSlices job, Core.Model.ModelWeights weights, TrainingSetup setup,
        RangePlan? plan)
    {
        var clock = Stopwatch.StartNew();
        _runner ??= new SliceRunner(setup.Network, setup.Plan.SliceSize, setup.Options.Slices, _spec.ThreadsPerWorker,
            _context.Pool);
        var (epoch, stepInEpoch) = setup.Plan.Locate(job.Step);
        var batch = setup.Plan.Permutation(epoch).AsMemory(stepInEpoch * setup.Options.Batch, setup.Options.Batch);
        var nodes = _runner.Run(weights, setup.Data.Train, batch, setup.Options.Seed, job.Step, job.FirstSlice,
            job.FirstSlice + job.SliceCount);
        _context.ComputedSlicesHook?.OnComputed(job.Step, nodes);
        var seconds = clock.Elapsed.TotalSeconds;
        if (plan is not null)
        {
            return Ship(job, nodes, plan, setup.Network.ParameterCount, seconds);
        }
        return nodes.Select(n => (IWireMessage)new SliceResult(job.RunId, job.Step, job.Version, n.Key.Level, n.Key.Index,
            n.Value, _workerId, seconds)).ToList();
    }

    /// <summary>
    /// Sharded aggregation: each subtree sum is cut into the plan's ranges, one piece per owner; the coordinator gets the
    /// result without its sum — the sum's SHA-256 (duplicates are compared by it) and whether it is finite. The pieces are
    /// listed (and so sent) before the result, so an owner's piece is on its way when the coordinator names it.
    /// </summary>
    private List<IWireMessage> Ship(ComputeSlices job, List<KeyValuePair<TreeNode, float[]>> nodes, RangePlan plan,
        int parameterCount, double seconds)
    {
        var messages = new List<IWireMessage>();
        var results = new List<IWireMessage>();
        foreach (var (node, sum) in nodes)
        {
            for (var r = 0; r < plan.Owners.Length; r++)
            {
                messages.Add(new GradientPiece(job.RunId, plan.Generation, job.Step, r, node.Level, node.Index, _workerId,
                    sum[plan.Firsts[r]..plan.Ends[r]]));
            }
            var finite = double.IsFinite(Core.Kernels.Elementwise.SumOfSquares(sum.AsSpan(0, parameterCount)));
            var fingerprint = System.Security.Cryptography.SHA256.HashData(
                System.Runtime.InteropServices.MemoryMarshal.AsBytes(sum.AsSpan(0, _spec.ResultLength)));
            results.Add(new SliceResult(job.RunId, job.Step, job.Version, node.Level, node.Index, [], _workerId, seconds,
                fingerprint, finite));
            _context.Pool.Return(sum);
        }
        messages.AddRange(results);
        return messages;
    }

    private IReadOnlyList<IWireMessage> Evaluate(EvaluateChunks job, Core.Model.ModelWeights weights, TrainingSetup setup)
    {
        var network = setup.Network;
        var test = setup.Data.Test;
        _evaluationWorkspace ??= new Workspace(network, Evaluator.ChunkRows);
        var replies = new List<IWireMessage>();
        for (var c = job.FirstChunk; c < job.FirstChunk + job.ChunkCount; c++)
        {
            var (lossSum, correct) = Evaluator.EvaluateChunk(network, weights, test, c, _evaluationWorkspace);
            replies.Add(new EvaluationResult(job.RunId, job.Version, c, lossSum, correct));
        }
        return replies;
    }

    private IReadOnlyList<IWireMessage> Statistics(ComputeStatistics job)
    {
        var train = _spec.RawData.Train;
        var replies = new List<IWireMessage>();
        for (var c = job.FirstChunk; c < job.FirstChunk + job.ChunkCount; c++)
        {
            var start = c * job.ChunkRows;
            var partial = FeatureStatistics.Of(train, start, Math.Min(job.ChunkRows, train.Count - start));
            replies.Add(new StatisticsResult(job.RunId, c, partial.Count, partial.Mean, partial.M2));
        }
        return replies;
    }
}
