using DistributedBackprop.Core.Data;
using Xunit;

namespace DistributedBackprop.Core.Tests.Data;

public sealed class CsvReaderTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Csv_with_a_header_reads_features_in_column_order_and_integer_labels()
    {
        var csv = _dir.WriteText("d.csv", "x1,label,x2\n0.5,1,-2\n1e3,0,3.25\n7,2,0\n");

        var data = CsvReader.Read(csv);

        Assert.Equal(3, data.Count);
        Assert.Equal(2, data.FeatureCount);
        Assert.Equal(3, data.ClassCount);
        Assert.Equal([1, 0, 2], data.Labels);
        Assert.Equal([0.5f, -2f, 1000f, 3.25f, 7f, 0f], data.Features);
    }

    [Fact]
    public void Label_column_name_can_be_overridden()
    {
        var csv = _dir.WriteText("d.csv", "class,a\n1,0.1\n0,0.2\n");

        var data = CsvReader.Read(csv, labelColumn: "class");

        Assert.Equal([1, 0], data.Labels);
        Assert.Equal([0.1f, 0.2f], data.Features);
    }

    [Fact]
    public void Crlf_line_endings_blank_lines_and_integral_float_labels_are_accepted()
    {
        var csv = _dir.WriteText("d.csv", "a,label\r\n1,0.0\r\n\r\n2,1\r\n\r\n");

        var data = CsvReader.Read(csv);

        Assert.Equal([0, 1], data.Labels);
        Assert.Equal([1f, 2f], data.Features);
    }

    [Fact]
    public void For_prediction_a_csv_without_a_label_column_is_all_features()
    {
        var csv = _dir.WriteText("d.csv", "x1,x2\n0.5,-2\n7,0\n");

        var data = CsvReader.ReadForPrediction(csv, out var labelled);

        Assert.False(labelled);
        Assert.Equal(2, data.FeatureCount);
        Assert.Equal([0.5f, -2f, 7f, 0f], data.Features);
    }

    [Fact]
    public void For_prediction_the_label_column_is_read_even_when_every_row_has_one_class()
    {
        var csv = _dir.WriteText("d.csv", "x1,label,x2\n0.5,0,-2\n7,0,0\n");

        var data = CsvReader.ReadForPrediction(csv, out var labelled);

        Assert.True(labelled);
        Assert.Equal([0, 0], data.Labels);
        Assert.Equal([0.5f, -2f, 7f, 0f], data.Features);
    }

    [Fact]
    public void For_prediction_a_csv_without_a_header_row_is_rejected()
    {
        var csv = _dir.WriteText("d.csv", "1,2\n3,4\n");

        Expect.InputError(() => CsvReader.ReadForPrediction(csv, out _), $"'{csv}'", "not a header row");
    }

    [Fact]
    public void Missing_label_column_is_rejected_listing_the_columns_found()
    {
        var csv = _dir.WriteText("d.csv", "a,b,target\n1,2,0\n");

        Expect.InputError(() => CsvReader.Read(csv), $"'{csv}'", "no label column 'label'", "'a', 'b', 'target'");
    }

    [Fact]
    public void Empty_csv_file_is_rejected_naming_the_file()
    {
        var csv = _dir.WriteText("d.csv", "");

        Expect.InputError(() => CsvReader.Read(csv), $"'{csv}' is empty");
    }

    [Fact]
    public void Csv_with_a_header_but_no_rows_is_rejected_naming_the_file()
    {
        var csv = _dir.WriteText("d.csv", "a,label\n");

        Expect.InputError(() => CsvReader.Read(csv), $"'{csv}' has a header row but no data rows");
    }

    [Fact]
    public void Ragged_row_is_rejected_naming_the_file_line_and_cell_count()
    {
        var csv = _dir.WriteText("d.csv", "a,b,label\n1,2,0\n3,1\n");

        Expect.InputError(() => CsvReader.Read(csv), $"'{csv}' line 3 has 2 cells but the header has 3 columns");
    }

    [Fact]
    public void Non_numeric_cell_is_rejected_naming_the_file_line_and_column()
    {
        var csv = _dir.WriteText("d.csv", "a,b,label\n1,2,0\n3,abc,1\n");

        Expect.InputError(() => CsvReader.Read(csv), $"'{csv}' line 3, column 'b': 'abc' is not a number");
    }

    [Fact]
    public void Decimal_comma_is_not_read_as_a_number_whatever_the_culture()
    {
        var csv = _dir.WriteText("d.csv", "a;b,label\n1;5,0\n");

        Expect.InputError(() => CsvReader.Read(csv), "line 2, column 'a;b': '1;5' is not a number");
    }

    [Fact]
    public void Empty_cell_is_rejected_naming_the_line_and_column()
    {
        var csv = _dir.WriteText("d.csv", "a,label\n,1\n");

        Expect.InputError(() => CsvReader.Read(csv), "line 2, column 'a': the cell is empty");
    }

    [Theory]
    [InlineData("NaN")]
    [InlineData("Infinity")]
    [InlineData("-Infinity")]
    [InlineData("1e999")]
    public void Non_finite_cell_is_rejected_naming_the_file_line_and_column(string cell)
    {
        var csv = _dir.WriteText("d.csv", $"a,b,label\n1,2,0\n4,{cell},1\n");

        Expect.InputError(() => CsvReader.Read(csv), $"'{csv}' line 3, column 'b': '{cell}' is not a finite number");
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("1.5")]
    [InlineData("cat")]
    [InlineData("")]
    public void Label_that_is_not_a_non_negative_integer_is_rejected_naming_the_line(string label)
    {
        var csv = _dir.WriteText("d.csv", $"a,label\n1,0\n2,{label}\n");

        Expect.InputError(() => CsvReader.Read(csv), $"'{csv}' line 3, column 'label'", "non-negative integers");
    }

    [Fact]
    public void Huge_label_is_rejected_as_not_a_class()
    {
        var csv = _dir.WriteText("d.csv", "a,label\n1,0\n2,1000000\n");

        Expect.InputError(() => CsvReader.Read(csv), "line 3", "largest supported class");
    }

    [Fact]
    public void Labels_of_a_single_class_are_rejected()
    {
        var csv = _dir.WriteText("d.csv", "a,label\n1,0\n2,0\n");

        Expect.InputError(() => CsvReader.Read(csv), $"'{csv}'", "at least 2 classes");
    }

    [Fact]
    public void Csv_with_only_a_label_column_is_rejected()
    {
        var csv = _dir.WriteText("d.csv", "label\n1\n0\n");

        Expect.InputError(() => CsvReader.Read(csv), $"'{csv}' has no feature columns");
    }
}
