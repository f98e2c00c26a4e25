using System.Text;
using DistributedBackprop.Node.Dashboard;
using DistributedBackprop.Node.Tests.EndToEnd;
using Xunit;

namespace DistributedBackprop.Node.Tests.Dashboard;

public sealed class JsonLinesTailerTests
{
    [Fact]
    public void A_partial_last_line_is_held_until_its_newline_arrives()
    {
        using var temp = new TempFolder();
        var path = temp.WriteText("metrics.jsonl", "{\"step\":1}\n{\"step\":");
        var tailer = new JsonLinesTailer(path);

        Assert.Equal(["{\"step\":1}"], tailer.ReadNewLines());
        Assert.Empty(tailer.ReadNewLines());

        File.AppendAllText(path, "2}");
        Assert.Empty(tailer.ReadNewLines());
        File.AppendAllText(path, "\n");
        Assert.Equal(["{\"step\":2}"], tailer.ReadNewLines());
    }

    [Fact]
    public void Lines_appended_as_the_file_grows_are_each_read_once_in_order()
    {
        using var temp = new TempFolder();
        var path = temp.WriteText("events.jsonl", "");
        var tailer = new JsonLinesTailer(path);
        var read = new List<string>();
        for (var i = 0; i < 50; i++)
        {
            File.AppendAllText(path, $"{{\"n\":{i}}}\r\n\n");
            if (i % 7 == 0)
            {
                read.AddRange(tailer.ReadNewLines());
            }
        }
        read.AddRange(tailer.ReadNewLines());

        Assert.Equal(Enumerable.Range(0, 50).Select(i => $"{{\"n\":{i}}}"), read);
        Assert.Empty(tailer.ReadNewLines());
    }

    [Fact]
    public void A_file_that_does_not_exist_yet_reads_as_empty_until_it_appears()
    {
        using var temp = new TempFolder();
        var tailer = new JsonLinesTailer(Path.Combine(temp.Path, "not-yet", "metrics.jsonl"));
        Assert.Empty(tailer.ReadNewLines());

        temp.WriteText("not-yet/metrics.jsonl", "{\"step\":1}\n");
        Assert.Equal(["{\"step\":1}"], tailer.ReadNewLines());
    }

    [Fact]
    public void A_line_cut_inside_a_multibyte_character_comes_out_whole()
    {
        using var temp = new TempFolder();
        var line = Encoding.UTF8.GetBytes("{\"message\":\"über µ\"}\n");
        var cut = Array.IndexOf(line, (byte)0xC3) + 1; // between the two bytes of 'ü'
        var path = temp.Write("events.jsonl", line[..cut]);
        var tailer = new JsonLinesTailer(path);
        Assert.Empty(tailer.ReadNewLines());

        using (var stream = new FileStream(path, FileMode.Append))
        {
            stream.Write(line.AsSpan(cut));
        }
        Assert.Equal(["{\"message\":\"über µ\"}"], tailer.ReadNewLines());
    }

    [Fact]
    public void A_file_that_shrank_was_replaced_and_is_read_again_from_the_start()
    {
        using var temp = new TempFolder();
        var path = temp.WriteText("metrics.jsonl", "{\"step\":1}\n{\"step\":2}\n");
        var tailer = new JsonLinesTailer(path);
        Assert.Equal(2, tailer.ReadNewLines().Count);

        File.WriteAllText(path, "{\"step\":9}\n");
        Assert.Equal(["{\"step\":9}"], tailer.ReadNewLines());
    }
}
