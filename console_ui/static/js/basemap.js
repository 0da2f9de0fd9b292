// The caller's map: Leaflet (no WebGL: headless Chromium and old control-room PCs have none).
// Tiles from MAP_TILE_URL where the deployment runs a tile server; otherwise an offline basemap,
// the world-atlas country shapes, so the map works with no network beyond our own server.
import * as L from '/static/vendor/leaflet/leaflet-src.esm.js';

const ATLAS_URL = '/static/vendor/world-atlas/countries-50m.json';
/** Country outlines hold no street detail: zooming past this shows one flat colour. */
const OFFLINE_MAX_ZOOM = 11;
/** Offline, a new caller is shown with the borders around them (which country, which region);
    the exact figures are in the text under the map. */
const OFFLINE_FIT_ZOOM = 6;
const TILE_MAX_ZOOM = 19;
/** Positions kept for the track line; older ones drop off. */
const TRACK_POINTS_MAX = 500;

/**
 * Makes each ring continuous across the antimeridian (Russia, Fiji, Antarctica): a jump of more
 * than 180 degrees between two points continues past ±180 instead, or Leaflet draws a line
 * across the whole world.
 * @param {{type: string, coordinates: any} | null} geometry
 */
function unwrapGeometry(geometry) {
  if (!geometry) {
    return;
  }
  const polygons = geometry.type === 'MultiPolygon' ? geometry.coordinates : [geometry.coordinates];
  for (const polygon of polygons) {
    for (const ring of polygon) {
      let offset = 0;
      for (let index = 1; index < ring.length; index += 1) {
        const step = ring[index][0] + offset - ring[index - 1][0];
        if (step > 180) {
          offset -= 360;
        } else if (step < -180) {
          offset += 360;
        }
        ring[index][0] += offset;
      }
    }
  }
}

/**
 * A map in `element` (which keeps its data-* attributes) with the caller's position, accuracy
 * circle and track.
 */
export class CallerMap {
  /** @param {HTMLElement} element */
  constructor(element) {
    this.element = element;
    const tileUrl = element.dataset.tileUrl || '';
    this.maxZoom = tileUrl ? TILE_MAX_ZOOM : OFFLINE_MAX_ZOOM;
    this.fitZoom = tileUrl ? TILE_MAX_ZOOM - 1 : OFFLINE_FIT_ZOOM;
    this.map = L.map(element, {
      zoomControl: true,
      attributionControl: Boolean(tileUrl),
      maxZoom: this.maxZoom,
      worldCopyJump: true,
    }).setView([20, 0], 2);
    if (tileUrl) {
      L.tileLayer(tileUrl, { maxZoom: TILE_MAX_ZOOM }).addTo(this.map);
    } else {
      element.classList.add('map-offline');
      this.loadAtlas();
    }
    this.track = L.polyline([], { color: '#4da3ff', weight: 3, opacity: 0.8 }).addTo(this.map);
    this.circle = null;
    this.marker = null;
    this.followed = false;
  }

  async loadAtlas() {
    const topojson = /** @type {any} */ (window).topojson;
    if (!topojson) {
      console.warn('map: topojson-client not loaded; no basemap');
      return;
    }
    try {
      const response = await fetch(ATLAS_URL, { credentials: 'same-origin' });
      const topology = await response.json();
      const countries = topojson.feature(topology, topology.objects.countries);
      for (const feature of countries.features) {
        unwrapGeometry(feature.geometry);
      }
      L.geoJSON(countries, {
        interactive: false,
        style: { color: '#5b6b7d', weight: 1, fillColor: '#2a3542', fillOpacity: 1 },
      })
        .addTo(this.map)
        .bringToBack();
    } catch (error) {
      console.warn('map: offline basemap not loaded', error);
    }
  }

  /**
   * Adds a position: marker, accuracy circle, track; keeps it in view.
   * @param {{lat: number, lon: number, accuracy?: number | null}} fix
   */
  show(fix) {
    const here = L.latLng(fix.lat, fix.lon);
    const accuracy = Number.isFinite(fix.accuracy) ? Number(fix.accuracy) : 0;
    this.track.addLatLng(here);
    const points = this.track.getLatLngs();
    if (points.length > TRACK_POINTS_MAX) {
      this.track.setLatLngs(points.slice(-TRACK_POINTS_MAX));
    }
    if (!this.marker) {
      this.circle = L.circle(here, {
        radius: accuracy,
        color: '#4da3ff',
        weight: 1,
        fillOpacity: 0.15,
      }).addTo(this.map);
      this.marker = L.circleMarker(here, {
        radius: 8,
        color: '#ffffff',
        weight: 3,
        fillColor: '#e5484d',
        fillOpacity: 1,
      }).addTo(this.map);
    } else {
      this.marker.setLatLng(here);
      this.circle.setLatLng(here).setRadius(accuracy);
    }
    if (!this.followed || !this.map.getBounds().contains(here)) {
      this.followed = true;
      const bounds = accuracy > 0 ? this.circle.getBounds() : L.latLngBounds([here, here]);
      this.map.fitBounds(bounds, { maxZoom: this.fitZoom, padding: [24, 24] });
    }
  }

  /** Forget the caller (the call ended): an empty map again. */
  clear() {
    this.track.setLatLngs([]);
    this.marker?.remove();
    this.circle?.remove();
    this.marker = null;
    this.circle = null;
    this.followed = false;
    this.map.setView([20, 0], 2);
  }

  /** The box was resized or shown: let Leaflet measure it again. */
  refresh() {
    this.map.invalidateSize();
  }
}
