using Microsoft.Playwright;
using Xunit;

namespace DistributedBackprop.Node.Tests.Browser;

/// <summary>
/// Debian's headless Chromium (/usr/bin/chromium) driven by Playwright; Playwright's own browser download cannot
/// reach its servers here, so it launches this executable. One browser for a test class.
/// </summary>
public sealed class Chromium : IAsyncLifetime
{
    public const string ExecutablePath = "/usr/bin/chromium";

    private IPlaywright? _playwright;
    private IBrowser? _browser;

    public IBrowser Browser => _browser ?? throw new InvalidOperationException($"{ExecutablePath} is not installed");

    public async Task InitializeAsync()
    {
        if (!File.Exists(ExecutablePath))
        {
            return;
        }
        _playwright = await Playwright.CreateAsync();
        _browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ExecutablePath,
            Headless = true,
        });
    }

    /// <summary>A fresh page of a readable desktop size; script errors and failed requests are collected for the test to check.</summary>
    public async Task<WatchedPage> OpenAsync()
    {
        var page = await Browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1400, Height = 900 } });
        return new WatchedPage(page);
    }

    public async Task DisposeAsync()
    {
        if (_browser is not null)
        {
            await _browser.DisposeAsync();
        }
        _playwright?.Dispose();
    }
}

/// <summary>A page and what went wrong on it: uncaught script errors, console errors, every URL it requested.</summary>
public sealed class WatchedPage : IAsyncDisposable
{
    public WatchedPage(IPage page)
    {
        Page = page;
        page.PageError += (_, error) => Errors.Add("page error: " + error);
        page.Console += (_, message) =>
        {
            if (message.Type == "error")
            {
                Errors.Add("console error: " + message.Text);
            }
        };
        page.Request += (_, request) => Requests.Add(request.Url);
    }

    public IPage Page { get; }

    public List<string> Errors { get; } = [];

    public List<string> Requests { get; } = [];

    /// <summary>Waits until <paramref name="condition"/> (a JavaScript expression) holds in the page; fails with what the page shows.</summary>
    public async Task WaitForAsync(string condition, string what, TimeSpan? deadline = null)
    {
        try
        {
            await Page.WaitForFunctionAsync($"() => {{ const d = window.distbpDashboard; return !!d && ({condition}); }}", null,
                new PageWaitForFunctionOptions { Timeout = (float)(deadline ?? TimeSpan.FromSeconds(30)).TotalMilliseconds });
        }
        catch (TimeoutException)
        {
            var state = await Page.EvaluateAsync<string>("() => JSON.stringify(window.distbpDashboard ?? null)");
            Assert.Fail($"the page never showed {what} ({condition}); it shows {state}; errors: {string.Join("; ", Errors)}");
        }
    }

    public Task<T> ReadAsync<T>(string expression) => Page.EvaluateAsync<T>($"() => window.distbpDashboard.{expression}");

    public ValueTask DisposeAsync() => new(Page.CloseAsync());
}

/// <summary>
/// A browser test: skipped (with the reason) where Debian's chromium is not installed, except under CI, which installs it
/// (.ci/run) — there a missing browser fails the test instead of hiding it.
/// </summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    public ChromiumFactAttribute()
    {
        if (!File.Exists(Chromium.ExecutablePath) && Environment.GetEnvironmentVariable("CI") != "true")
        {
            Skip = $"{Chromium.ExecutablePath} is missing; apt-get install chromium to include the browser tests";
        }
    }
}
