"""Static files storage for production: whitenoise's compressed, hashed files, with the page's ES module
imports (`import ... from "./dom.js"`) rewritten to the hashed names too. Without that, a browser could load
a new `app.js` beside an old cached `dom.js` for the minute the unhashed names are cached after a deploy."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    support_js_module_import_aggregation = True
