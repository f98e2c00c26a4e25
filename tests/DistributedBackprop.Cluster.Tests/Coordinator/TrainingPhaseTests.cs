using Akka.Actor;
using Akka.Event;
using Akka.TestKit.Xunit2;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Coordinator;
using DistributedBackprop.Cluster.Transport;
using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Training;
using Xunit;
using static DistributedBackprop.Cluster.Tests.Protocol.ProtocolSamples;

namespace DistributedBackprop.Cluster.Tests.Coordinator;

/// <summary>Training without the actor: probes play the workers (through the shard region) and a node's cache.</summary>
public sealed class TrainingPhaseTests : TestKit
{
    private static readonly Address Self = new("akka.tcp", "distbp", "10.0.0.1", 4053);
    private static readonly string[] Workers = ["worker-0", "worker-1", "worker-2"];
    private const string Run = "run-1";

    // 256 rows, batch 64: 4 steps, one epoch, then an evaluation of 64 held-out rows.
    private static readonly TrainingOptions Options = TinyOptions(3);
    private readonly TrainingSetup _setup = TrainingSetup.Create(Options, Subset(256, 64));
    private readonly ClusterView _view = new(Self);
    private readonly WorkAssignment _work = new(Options.Slices, Workers);
    private readonly FaultLog _faults = new();
    private readonly PhaseWait _wait = new();
    private readonly Akka.TestKit.TestProbe _region;
    private readonly Akka.TestKit.TestProbe _cache;
    private readonly TrainingPhase _training;

    public TrainingPhaseTests() : base(LocalSystem("training-phase"))
    {
        _region = CreateTestProbe();
        _cache = CreateTestProbe();
        _view.MemberUp(Self);
        _view.CacheFound(Self, _cache.Ref);
        var membership = new Membership(_view, _work, _faults, RunRecorder.None, Workers.Length, 1, Run, "hash", NoLogger.Instance);
        var outbox = new CoordinatorOutbox(Run, _region.Ref, TensorTransport.For(Sys), _view, Sys, TestActor);
        var pool = new BufferPool(_setup.Network.ResultLength, 32);
        var round = new StepRound(Run, _setup, _work, new ResultVerifier(TimeSpan.FromSeconds(30)), _faults, pool, NoLogger.Instance);
        _training = new TrainingPhase(_setup, _setup.NewState(), round, new RunProgress(_setup, RunRecorder.None, _faults, null),
            new PublishedWeights(Run), _work, _view, membership, RunRecorder.None, outbox, _wait, new CoordinatorTuning());
    }

    [Fact]
    public void Steps_applied_from_the_workers_sums_give_the_single_process_weights_then_an_evaluation_then_done()
    {
        var expected = new LocalTrainer(TrainingSetup.Create(Options, Subset(256, 64))).Run();

        Assert.Equal(TrainingPhase.Stage.Step, _training.Start());
        for (var step = 0L; step < _setup.TotalSteps; step++)
        {
            var weights = _cache.ExpectMsg<WeightsVersion>(Patience);
            Assert.Equal(step, weights.Version);
            Assert.Equal($"step {step}", _training.Waiting);
            var jobs = ReceiveJobs();
            Assert.All(jobs, j => Assert.Equal((step, step), (j.Step, j.Version)));
            Assert.Equal(Enumerable.Range(0, Options.Slices), jobs.SelectMany(j => Enumerable.Range(j.FirstSlice, j.SliceCount)).Order());
            var results = jobs.SelectMany(j => SubtreeSums(_setup, new ModelWeights(weights.Parameters, weights.Buffers), step,
                    j.FirstSlice, j.FirstSlice + j.SliceCount)
                .Select(s => new SliceResult(Run, step, step, s.Key.Level, s.Key.Index, s.Value, j.WorkerId, 0.001))).ToList();
            // Last first: the tree is canonical whatever the order of arrival.
            results.Reverse();
            for (var i = 0; i < results.Count; i++)
            {
                Assert.Equal(i == results.Count - 1, _training.Take(results[i], TestActor));
            }
        }

        var last = _cache.ExpectMsg<WeightsVersion>(Patience);
        Assert.Equal(expected.WeightsSha256, new ModelWeights(last.Parameters, last.Buffers).Sha256());
        Assert.Equal(TrainingPhase.Stage.Evaluation, _training.Current);
        Assert.Equal($"evaluation after step {_setup.TotalSteps}", _training.Waiting);
        var evaluation = _region.ExpectMsg<EvaluateChunks>(Patience);
        Assert.Equal((last.Version, 0, 1), (evaluation.Version, evaluation.FirstChunk, evaluation.ChunkCount));
        Assert.False(_training.AwaitsEvaluation(last.Version - 1, 0));
        Assert.True(_training.AwaitsEvaluation(last.Version, 0));

        Assert.True(_training.Evaluated(new EvaluationResult(Run, last.Version, 0, 32.0, 16)));
        Assert.Equal(TrainingPhase.Stage.Done, _training.Current);
        Assert.Equal(0.25, _training.Progress.Test.Accuracy);
        Assert.False(_region.HasMessages);
    }

    [Fact]
    public void A_lost_workers_slices_go_to_the_live_workers_and_a_nudge_copies_a_stragglers()
    {
        _training.Start();
        var jobs = ReceiveJobs();
        _work.MarkDead("worker-1");
        _training.WorkersLost(["worker-1"]);
        var lost = jobs.Single(j => j.WorkerId == "worker-1");
        var moved = ReceiveJobs(lost.SliceCount);
        Assert.DoesNotContain(moved, j => j.WorkerId == "worker-1");
        Assert.Equal(Enumerable.Range(lost.FirstSlice, lost.SliceCount),
            moved.SelectMany(j => Enumerable.Range(j.FirstSlice, j.SliceCount)).Order());

        // Nothing has come back: the nudge gives every run out a speculative copy on another worker.
        _training.Nudge();
        var copies = ReceiveJobs(Options.Slices);
        Assert.NotEmpty(copies);
        Assert.DoesNotContain(copies, j => j.WorkerId == "worker-1");
    }

    [Fact]
    public void Once_half_the_slices_are_in_the_rest_get_a_deadline_of_their_own_once_a_step()
    {
        var tuning = new CoordinatorTuning();
        _training.Start();
        var weights = _cache.ExpectMsg<WeightsVersion>(Patience);
        var jobs = ReceiveJobs().OrderBy(j => j.FirstSlice).ToList();
        Assert.Null(_training.TailDeadline());

        // worker-0 holds slices 0..1, worker-1 2..4: with both in, 5 of 8 are covered.
        foreach (var job in jobs.Take(2))
        {
            foreach (var (node, sum) in SubtreeSums(_setup, new ModelWeights(weights.Parameters, weights.Buffers), 0,
                         job.FirstSlice, job.FirstSlice + job.SliceCount))
            {
                Assert.False(_training.Take(new SliceResult(Run, 0, 0, node.Level, node.Index, sum, job.WorkerId, 0.001), TestActor));
            }
            if (job.FirstSlice == 0)
            {
                Assert.Null(_training.TailDeadline()); // 2 of 8
            }
        }
        var tail = _training.TailDeadline();
        Assert.NotNull(tail);
        Assert.InRange(tail.Value, tuning.MinTailDelay, tuning.ResendAfter);
        Assert.Null(_training.TailDeadline());
    }

    /// <summary>The step's jobs, until they cover <paramref name="slices"/> slices.</summary>
    private List<ComputeSlices> ReceiveJobs(int slices = 8)
    {
        var jobs = new List<ComputeSlices>();
        while (jobs.Sum(j => j.SliceCount) < slices)
        {
            jobs.Add(_region.ExpectMsg<ComputeSlices>(Patience));
        }
        return jobs;
    }
}
