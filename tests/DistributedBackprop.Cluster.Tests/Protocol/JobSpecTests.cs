using DistributedBackprop.Cluster.Transport;
using DistributedBackprop.Core.Model;
using DistributedBackprop.Core.Training;
using Xunit;
using static DistributedBackprop.Cluster.Tests.Protocol.ProtocolSamples;

namespace DistributedBackprop.Cluster.Tests.Protocol;

public sealed class JobSpecTests
{
    [Fact]
    public void The_run_id_is_the_options_hash_and_a_nodes_workers_share_its_threads()
    {
        var options = TinyOptions(workers: 3, threads: 8);
        var spec = new JobSpec(options, Subset(64, 10), new JobOutputs(null, null, 1, 1), localWorkers: 3);
        Assert.Equal(options.ConfigHash(), spec.ConfigHash);
        Assert.Equal(2, spec.ThreadsPerWorker);
        Assert.Equal(1, new JobSpec(options, Subset(64, 10), new JobOutputs(null, null, 1, 1), localWorkers: 16).ThreadsPerWorker);
    }

    [Fact]
    public void The_largest_message_fits_a_result_a_weights_version_a_range_owners_state_and_the_data_statistics()
    {
        var options = TinyOptions();
        var spec = new JobSpec(options, Subset(64, 10), new JobOutputs(null, null, 1, 1), localWorkers: 1);
        var network = new Network(TrainingSetup.SpecOf(options));
        Assert.Equal(network.ResultLength, spec.ResultLength);
        // A range owner's state (sharded aggregation): a range of the parameters and Adam's two values per parameter.
        var largest = Math.Max(Math.Max(network.ResultLength, 3L * network.ParameterCount + network.BufferCount), 4L * network.InputSize);
        Assert.Equal(DataFrames.FrameLimitFor(largest), spec.LargestMessageBytes);
        Assert.True(spec.LargestMessageBytes >= 4 * largest);
    }

    [Fact]
    public async Task A_nodes_job_ends_once_and_the_first_outcome_wins()
    {
        var node = new NodeContext(new JobSpec(TinyOptions(), Subset(64, 10), new JobOutputs(null, null, 1, 1), localWorkers: 1));
        Assert.False(node.HasEnded);
        node.Ended(new JobOutcome(JobStatus.Failed, "first"));
        node.Ended(new JobOutcome(JobStatus.Finished, "second"));
        Assert.True(node.HasEnded);
        Assert.Equal("first", (await node.Outcome).Message);
    }
}
