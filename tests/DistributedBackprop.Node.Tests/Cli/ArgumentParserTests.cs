using DistributedBackprop.Core;
using DistributedBackprop.Node.Cli;
using Xunit;

namespace DistributedBackprop.Node.Tests.Cli;

public sealed class ArgumentParserTests
{
    private static readonly HashSet<string> Valued = ["lr", "batch", "seed", "out"];
    private static readonly HashSet<string> Switches = ["batch-norm"];

    private static ParsedArguments Parse(params string[] args) => ParsedArguments.Parse("train", args, Valued, Switches);

    private static string Refused(Action action, string names)
    {
        var error = Assert.Throws<DistbpInputException>(action);
        Assert.DoesNotContain('\n', error.Message);
        Assert.Contains(names, error.Message);
        return error.Message;
    }

    [Fact]
    public void Values_switches_and_inline_values_are_read()
    {
        var args = Parse("--lr", "0.05", "--batch=64", "--batch-norm", "--seed", "7");
        Assert.Equal(0.05f, args.Float("lr", 1f));
        Assert.Equal(64, args.Int("batch", 1));
        Assert.Equal(7UL, args.ULong("seed", 1));
        Assert.True(args.Flag("batch-norm"));
        Assert.False(args.Has("out"));
        Assert.Equal(3, args.Int("missing", 3));
    }

    [Fact]
    public void A_negative_number_is_a_value_not_a_flag() => Assert.Equal(-0.5f, Parse("--lr", "-0.5").Float("lr", 1f));

    [Fact]
    public void Unknown_flag_is_refused() => Refused(() => Parse("--learning-rate", "0.1"), "--learning-rate");

    [Fact]
    public void Bare_word_is_refused() => Refused(() => Parse("0.1"), "'0.1'");

    [Fact]
    public void Missing_value_at_the_end_is_refused() => Refused(() => Parse("--batch"), "--batch");

    [Fact]
    public void Missing_value_before_the_next_flag_is_refused() => Refused(() => Parse("--batch", "--lr", "0.1"), "--batch");

    [Theory]
    [InlineData("--out=")]
    [InlineData("--out= ")]
    public void Empty_inline_value_is_refused(string arg) => Refused(() => Parse(arg), "--out");

    [Fact]
    public void Empty_separate_value_is_refused() => Refused(() => Parse("--out", ""), "--out");

    [Fact]
    public void Duplicate_value_is_refused() => Refused(() => Parse("--lr", "0.1", "--lr=0.2"), "--lr: given twice");

    [Fact]
    public void Duplicate_switch_is_refused() => Refused(() => Parse("--batch-norm", "--batch-norm"), "--batch-norm: given twice");

    [Fact]
    public void Switch_with_a_value_is_refused() => Refused(() => Parse("--batch-norm=true"), "--batch-norm");

    [Theory]
    [InlineData("batch", "12x")]
    [InlineData("batch", "1e3")]
    [InlineData("batch", "99999999999")]
    public void Bad_whole_number_is_refused(string name, string value) =>
        Refused(() => Parse($"--{name}", value).Int(name, 0), $"--{name}: '{value}'");

    [Theory]
    [InlineData("fast")]
    [InlineData("NaN")]
    [InlineData("Infinity")]
    [InlineData("0,1")]
    public void Bad_real_number_is_refused(string value) => Refused(() => Parse("--lr", value).Float("lr", 0), "--lr");

    [Fact]
    public void Negative_seed_is_refused() => Refused(() => Parse("--seed", "-1").ULong("seed", 0), "--seed");

    private static readonly HashSet<string> OptionalValue = ["dashboard"];

    private static ParsedArguments ParseWithDashboard(params string[] args) =>
        ParsedArguments.Parse("train", args, Valued, Switches, OptionalValue);

    [Fact]
    public void An_option_with_an_optional_value_takes_the_next_argument_unless_it_is_an_option()
    {
        Assert.Equal(9000, ParseWithDashboard("--dashboard", "9000", "--lr", "0.1").Int("dashboard", 8050));
        Assert.Equal(9001, ParseWithDashboard("--dashboard=9001").Int("dashboard", 8050));

        var bare = ParseWithDashboard("--dashboard", "--lr", "0.1");
        Assert.True(bare.Has("dashboard"));
        Assert.Equal(8050, bare.Int("dashboard", 8050));
        Assert.Equal(0.1f, bare.Float("lr", 1f));
        Assert.True(ParseWithDashboard("--lr", "0.1", "--dashboard").Has("dashboard"));

        Refused(() => ParseWithDashboard("--dashboard", "--dashboard", "80"), "--dashboard");
        Refused(() => ParseWithDashboard("--dashboard", "many").Int("dashboard", 8050), "--dashboard");
    }
}
