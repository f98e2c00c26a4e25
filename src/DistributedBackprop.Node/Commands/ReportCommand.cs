using DistributedBackprop.Core;
using DistributedBackprop.Node.Cli;
using DistributedBackprop.Node.Report;

namespace DistributedBackprop.Node.Commands;

/// <summary>
/// <c>distbp report RUN_DIR [--out DIR]</c>: the dashboard's charts of a finished (or stopped) run as one
/// self-contained HTML page and a PNG per chart, written to RUN_DIR/report unless told otherwise.
/// </summary>
public static class ReportCommand
{
    public const string Help = """
        usage: distbp report RUN_DIR [--out DIR]

          RUN_DIR     a run folder (config.json, metrics.jsonl, events.jsonl, summary.json)
          --out DIR   where to write index.html and the PNG plots (default RUN_DIR/report)
        """;

    public const string PageName = "index.html";

    public static int Run(IReadOnlyList<string> argv)
    {
        // The run folder comes first, as a plain argument; the options after it.
        var runDir = argv.Count > 0 && !argv[0].StartsWith("--", StringComparison.Ordinal) ? argv[0] : null;
        var args = ParsedArguments.Parse("report", runDir is null ? argv : argv.Skip(1).ToList(), new HashSet<string> { "out" },
            new HashSet<string> { "help" });
        if (args.Flag("help"))
        {
            Console.WriteLine(Help);
            return 0;
        }
        if (runDir is null)
        {
            throw new DistbpInputException("report: no run folder given; usage: distbp report RUN_DIR [--out DIR].");
        }
        var outDir = args.String("out") ?? Path.Combine(runDir, "report");
        if (File.Exists(outDir))
        {
            throw new DistbpInputException($"--out: '{outDir}' is a file; give a folder.");
        }
        var run = RunRecord.Read(runDir);

        var plots = ReportPlots.Write(run, outDir);
        AtomicWrite.Text(Path.Combine(outDir, PageName), HtmlReport.Build(run, DateTime.UtcNow));
        var steps = run.Steps.Count();
        Console.WriteLine($"report of {run.RunDir} ({steps} steps, {run.Evals.Count()} evaluations, {run.Events.Count} events"
                          + (run.Summary is null ? ", no summary: the run did not finish" : "")
                          + (run.SkippedLines > 0 ? $", {run.SkippedLines} unreadable line{(run.SkippedLines == 1 ? "" : "s")} skipped" : "") + ")");
        Console.WriteLine($"  {Path.Combine(outDir, PageName)}");
        foreach (var plot in plots)
        {
            Console.WriteLine($"  {Path.Combine(outDir, plot)}");
        }
        return 0;
    }
}
