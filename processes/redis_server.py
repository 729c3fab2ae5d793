"""supervisord program: the embedded Redis (AOF on, noeviction), exec'd in place."""

from eva00.config import load_or_exit
from eva00.ops.localstack import RedisSpec

settings = load_or_exit()
RedisSpec(settings.var_dir / "redis", settings.embedded_redis_port).exec()
