// The area an archive search is limited to, drawn on the map by tapping its corners: no
// drawing plugin, large buttons instead of a toolbar of small icons (touch screens, gloves).
// The server keeps calls with a location sample inside the polygon.
import * as L from '/static/vendor/leaflet/leaflet-src.esm.js';
import { t } from './i18n.js';

const MIN_POINTS = 3;
/** The server's limit (server/actions/archive.py: MAX_AREA_POINTS). */
const MAX_POINTS = 64;
const STYLE = { color: '#ffc640', weight: 3, fillColor: '#ffc640', fillOpacity: 0.15 };

export class AreaDrawer {
  /**
   * @param {L.Map} map
   * @param {{draw: HTMLButtonElement, finish: HTMLButtonElement, clear: HTMLButtonElement,
   *          state: HTMLElement}} controls
   * @param {() => void} onChange called when a finished area appears or goes
   */
  constructor(map, controls, onChange) {
    this.map = map;
    this.controls = controls;
    this.onChange = onChange;
    /** @type {L.LatLng[]} */
    this.points = [];
    this.drawing = false;
    this.layer = L.polygon([], STYLE).addTo(map);
    this.corners = L.layerGroup().addTo(map);
    map.on('click', (event) => this.add(event.latlng));
    controls.draw.addEventListener('click', () => this.start());
    controls.finish.addEventListener('click', () => this.finish());
    controls.clear.addEventListener('click', () => this.clear());
    this.render();
  }

  start() {
    this.points = [];
    this.drawing = true;
    this.map.getContainer().classList.add('is-drawing');
    this.render();
  }

  /** @param {L.LatLng} latlng */
  add(latlng) {
    if (!this.drawing || this.points.length >= MAX_POINTS) {
      return;
    }
    this.points.push(latlng.wrap());
    this.render();
  }

  finish() {
    if (this.points.length < MIN_POINTS) {
      return;
    }
    this.drawing = false;
    this.map.getContainer().classList.remove('is-drawing');
    this.render();
    this.onChange();
  }

  clear() {
    const had = this.value() !== '';
    this.points = [];
    this.drawing = false;
    this.map.getContainer().classList.remove('is-drawing');
    this.render();
    if (had) {
      this.onChange();
    }
  }

  /** The finished area as the search sends it, `lat,lon;lat,lon;...`, or ''. */
  value() {
    if (this.drawing || this.points.length < MIN_POINTS) {
      return '';
    }
    return this.points.map((p) => `${p.lat.toFixed(6)},${p.lng.toFixed(6)}`).join(';');
  }

  render() {
    this.layer.setLatLngs(this.points);
    this.corners.clearLayers();
    for (const point of this.points) {
      L.circleMarker(point, { radius: 6, color: '#ffc640', weight: 2, fillOpacity: 1 }).addTo(
        this.corners,
      );
    }
    const { draw, finish, clear, state } = this.controls;
    draw.setAttribute('aria-pressed', String(this.drawing));
    finish.disabled = !this.drawing || this.points.length < MIN_POINTS;
    clear.disabled = this.points.length === 0 && !this.drawing;
    if (this.drawing) {
      state.dataset.state = 'drawing';
      state.textContent = t('archive.area_drawing', { count: this.points.length });
    } else if (this.points.length >= MIN_POINTS) {
      state.dataset.state = 'drawn';
      state.textContent = t('archive.area_drawn', { count: this.points.length });
    } else {
      state.dataset.state = 'none';
      state.textContent = t('archive.area_none');
    }
  }
}
