"""WhiteNoise's manifest storage, gzip only (issue 20: `make test` time taken back).

WhiteNoise also writes a brotli copy of every file when the brotli package is importable. The
images never have it (requirements/base.txt), so production serves gzip (nginx's own, or
WhiteNoise's .gz), while a development venv gets brotli through Locust's Flask: there every
collectstatic (each `make local`, each test stack behind nginx) spent ~30 s of CPU compressing
the static files at brotli's highest level, for files only that venv would serve.
"""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class GzipManifestStaticFilesStorage(CompressedManifestStaticFilesStorage):
    def create_compressor(self, **kwargs):
        return super().create_compressor(use_brotli=False, **kwargs)
