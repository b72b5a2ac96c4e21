# Production image: web (gunicorn) by default; the same image runs the Celery worker and beat.
# Production needs DATABASE_URL and REDIS_URL (see .env.example); the embedded database is for laptops.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 APP_ENV=production
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN useradd --create-home --uid 1000 app \
    && DJANGO_SECRET_KEY=collectstatic-only DJANGO_ALLOWED_HOSTS=x python manage.py collectstatic --noinput \
    && chown -R app /app/var
USER app
EXPOSE 8000
CMD ["gunicorn", "-c", "python:config.gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4", "--access-logfile", "-"]
